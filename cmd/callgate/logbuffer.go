package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// logBuffer gathers log lines and writes them out together: within delay
// of the first line it holds, at once when it holds limit bytes, and on
// Flush and Close.
//
// Why: the gateway writes an access line per request, and a write system
// call per line was as costly as a request's own answer (the load harness
// measured one write(2) per line beside the response's one). Lines at
// warning level and above are written at once (see flushingHandler), so a
// problem is never held back; what a kill -9 can lose is at most delay's
// worth of information lines.
type logBuffer struct {
	out   io.Writer
	delay time.Duration
	limit int

	// outMu orders the writes to out: whoever holds it takes everything
	// buffered so far, so lines leave in the order they came.
	outMu sync.Mutex

	mu      sync.Mutex
	buf     []byte
	spare   []byte
	armed   bool // a timed flush is pending
	timer   *time.Timer
	closed  bool
	lastErr error
}

// Defaults for the gateway's log: a line reaches its destination within
// logFlushDelay; logBufferLimit bounds what one flush writes.
const (
	logFlushDelay  = 20 * time.Millisecond
	logBufferLimit = 64 << 10
)

func newLogBuffer(out io.Writer, delay time.Duration, limit int) *logBuffer {
	b := &logBuffer{out: out, delay: delay, limit: limit}
	b.timer = time.AfterFunc(time.Hour, func() { b.Flush() })
	b.timer.Stop()
	return b
}

// Write keeps a copy of p. It writes through when the buffer is closed
// and writes the buffer out when it reaches the limit.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.outMu.Lock()
		defer b.outMu.Unlock()
		return b.out.Write(p)
	}
	b.buf = append(b.buf, p...)
	full := len(b.buf) >= b.limit
	if !full && !b.armed {
		b.armed = true
		b.timer.Reset(b.delay)
	}
	b.mu.Unlock()
	if full {
		b.Flush()
	}
	return len(p), nil
}

// Flush writes out everything buffered so far. It returns the first error
// the destination gave since the last Flush that returned one.
func (b *logBuffer) Flush() error {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	b.mu.Lock()
	pending := b.buf
	b.buf, b.spare = b.spare[:0], nil
	if b.armed {
		b.armed = false
		b.timer.Stop()
	}
	b.mu.Unlock()
	if len(pending) > 0 {
		if _, err := b.out.Write(pending); err != nil {
			b.mu.Lock()
			if b.lastErr == nil {
				b.lastErr = err
			}
			b.mu.Unlock()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spare == nil && cap(pending) <= 4*b.limit {
		b.spare = pending[:0]
	}
	err := b.lastErr
	b.lastErr = nil
	return err
}

// Close writes out what is buffered; later writes go straight through.
func (b *logBuffer) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.Flush()
}

// flushingHandler writes the buffer out after every record at level or
// above, so warnings and errors are never held back.
type flushingHandler struct {
	slog.Handler
	buf   *logBuffer
	level slog.Level
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= h.level {
		h.buf.Flush()
	}
	return err
}

func (h flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushingHandler{Handler: h.Handler.WithAttrs(attrs), buf: h.buf, level: h.level}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{Handler: h.Handler.WithGroup(name), buf: h.buf, level: h.level}
}
