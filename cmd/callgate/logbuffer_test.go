package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callgate/callgate/config"
)

// countingWriter records every Write it receives as one chunk.
type countingWriter struct {
	mu     sync.Mutex
	chunks []string
	err    error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.chunks = append(w.chunks, string(p))
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func (w *countingWriter) snapshot() (writes int, all string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.chunks), strings.Join(w.chunks, "")
}

func TestLogBufferBatchesLinesAndKeepsTheirOrder(t *testing.T) {
	out := &countingWriter{}
	// A delay no test run reaches: only Flush, the limit and Close write.
	b := newLogBuffer(out, time.Hour, 1<<20)
	var want strings.Builder
	for i := range 100 {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		if _, err := b.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := out.snapshot(); n != 0 {
		t.Fatalf("%d writes before any flush, want 0", n)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	n, got := out.snapshot()
	if n != 1 || got != want.String() {
		t.Fatalf("after Flush: %d writes, output %q; want one write of every line in order", n, got)
	}
}

func TestLogBufferWritesWithinTheDelay(t *testing.T) {
	out := &countingWriter{}
	b := newLogBuffer(out, 5*time.Millisecond, 1<<20)
	b.Write([]byte("a\n"))
	b.Write([]byte("b\n"))
	waitForOutput(t, out, "a\nb\n")
	// The timer re-arms for the next line.
	b.Write([]byte("c\n"))
	waitForOutput(t, out, "a\nb\nc\n")
}

// waitForOutput waits until out holds want, which a timed flush writes.
func waitForOutput(t *testing.T, out *countingWriter, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, got := out.snapshot()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timed flush never came: output %q, want %q", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLogBufferWritesAtTheLimit(t *testing.T) {
	out := &countingWriter{}
	b := newLogBuffer(out, time.Hour, 64)
	line := strings.Repeat("x", 40) + "\n"
	b.Write([]byte(line))
	if n, _ := out.snapshot(); n != 0 {
		t.Fatalf("%d writes under the limit", n)
	}
	b.Write([]byte(line)) // 82 bytes: over the limit
	if n, got := out.snapshot(); n != 1 || got != line+line {
		t.Fatalf("at the limit: %d writes, %q", n, got)
	}
}

func TestLogBufferCloseWritesTheRestAndThenWritesThrough(t *testing.T) {
	out := &countingWriter{}
	b := newLogBuffer(out, time.Hour, 1<<20)
	b.Write([]byte("held\n"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, got := out.snapshot(); got != "held\n" {
		t.Fatalf("Close wrote %q", got)
	}
	b.Write([]byte("after\n"))
	if n, got := out.snapshot(); n != 2 || got != "held\nafter\n" {
		t.Fatalf("after Close: %d writes, %q; want the line written through", n, got)
	}
}

func TestLogBufferReportsTheDestinationsError(t *testing.T) {
	boom := errors.New("disk full")
	out := &countingWriter{err: boom}
	b := newLogBuffer(out, time.Hour, 1<<20)
	b.Write([]byte("x\n"))
	if err := b.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v, want %v", err, boom)
	}
	if err := b.Flush(); err != nil {
		t.Fatalf("second Flush = %v, want nil (the error was reported once)", err)
	}
}

// Concurrent writers, timed flushes and explicit flushes: every line
// arrives whole and exactly once (run with -race).
func TestLogBufferConcurrentWriters(t *testing.T) {
	out := &countingWriter{}
	b := newLogBuffer(out, 100*time.Microsecond, 256)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				fmt.Fprintf(b, "w%d-%d\n", w, i)
				if i%50 == 0 {
					b.Flush()
				}
			}
		}()
	}
	wg.Wait()
	b.Close()
	_, got := out.snapshot()
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		seen[line]++
	}
	for w := range 8 {
		for i := range 500 {
			if n := seen[fmt.Sprintf("w%d-%d", w, i)]; n != 1 {
				t.Fatalf("line w%d-%d arrived %d times", w, i, n)
			}
		}
	}
	// Each writer's lines keep their order.
	pos := map[int]int{}
	for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		var w, i int
		fmt.Sscanf(line, "w%d-%d", &w, &i)
		if prev, ok := pos[w]; ok && i != prev+1 {
			t.Fatalf("writer %d: line %d after %d", w, i, prev)
		}
		pos[w] = i
	}
}

func TestLoggerWritesWarningsAtOnce(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			out := &countingWriter{}
			b := newLogBuffer(out, time.Hour, 1<<20)
			log := newLogger(config.Log{Format: format}, b).With("replica", "a")
			log.Info("routine")
			if n, _ := out.snapshot(); n != 0 {
				t.Fatalf("an info line was written at once (%d writes)", n)
			}
			log.WithGroup("g").WarnContext(context.Background(), "trouble", "k", "v")
			n, got := out.snapshot()
			if n != 1 || !strings.Contains(got, "routine") || !strings.Contains(got, "trouble") {
				t.Fatalf("after a warning: %d writes, %q; want the held line and the warning written together", n, got)
			}
			if !bytes.Contains([]byte(got), []byte("replica")) {
				t.Fatalf("attributes lost: %q", got)
			}
			log.Error("worse")
			if _, got := out.snapshot(); !strings.Contains(got, "worse") {
				t.Fatalf("an error line was held back: %q", got)
			}
			// Below the configured level nothing is written at all.
			quiet := newLogger(config.Log{Level: "error"}, b)
			quiet.Warn("ignored")
			b.Flush()
			if _, got := out.snapshot(); strings.Contains(got, "ignored") {
				t.Fatalf("a warning below the level was written: %q", got)
			}
		})
	}
}
