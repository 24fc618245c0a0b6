package httpserver

import (
	"log"
	"net/http"
	"time"
)

// HTTPOptions are the limits of the net/http server in front of Echo. Zero
// fields take the defaults below.
type HTTPOptions struct {
	// MaxHeaderBytes bounds the request line and headers, default 32 KiB
	// (Go allows 4 KiB of slack above it). Larger gets Go's own plain-text
	// "431 Request Header Fields Too Large".
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds reading the request line and headers,
	// default 10s: a client that sends them slower is disconnected.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading the whole request, body included, default 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds handling and writing the response, default 30s.
	WriteTimeout time.Duration
	// IdleTimeout bounds a kept-alive connection waiting for its next
	// request, default 120s.
	IdleTimeout time.Duration
	// ErrorLog receives net/http's own errors (bad TLS, panics it caught).
	ErrorLog *log.Logger
}

// Default server limits.
const (
	DefaultMaxHeaderBytes    = 32 << 10
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// NewHTTPServer returns the http.Server every callgate listener uses, with
// its limits set deliberately. Requests it refuses before any handler runs
// (a malformed request line: 400; headers over MaxHeaderBytes: 431) are
// answered by net/http itself, in plain text, and reach neither the access
// log nor the metrics.
func NewHTTPServer(handler http.Handler, o HTTPOptions) *http.Server {
	def := func(v, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return v
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return &http.Server{
		Handler:           handler,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ReadHeaderTimeout: def(o.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       def(o.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      def(o.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       def(o.IdleTimeout, DefaultIdleTimeout),
		ErrorLog:          o.ErrorLog,
	}
}
