package httpserver

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startHTTP serves the shared Echo stack through NewHTTPServer on loopback.
func startHTTP(t *testing.T, o HTTPOptions) string {
	t.Helper()
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := NewHTTPServer(s.Echo, o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestHTTPServerLimits: the limits the server refuses before Echo sees a
// request, and what the client gets back then.
func TestHTTPServerLimits(t *testing.T) {
	if got := NewHTTPServer(nil, HTTPOptions{}); got.MaxHeaderBytes != DefaultMaxHeaderBytes ||
		got.ReadHeaderTimeout != DefaultReadHeaderTimeout || got.ReadTimeout != DefaultReadTimeout ||
		got.WriteTimeout != DefaultWriteTimeout || got.IdleTimeout != DefaultIdleTimeout {
		t.Fatalf("defaults not applied: %+v", got)
	}
	addr := startHTTP(t, HTTPOptions{MaxHeaderBytes: 1024, ReadHeaderTimeout: 300 * time.Millisecond})
	tests := []struct {
		name       string
		request    string
		wantStatus int
	}{
		{"ordinary request", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"headers under the limit", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 1000) + "\r\n\r\n", 200},
		{"oversized headers", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 8000) + "\r\n\r\n", 431},
		{"malformed request line", "GET\r\n\r\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, tt.request)
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
		})
	}

	t.Run("slow headers are cut off", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // and never the blank line
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(make([]byte, 512))
		if err == nil && n > 0 {
			// Go may answer before closing; what matters is that it closes.
			_, err = io.ReadAll(conn)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the server kept a connection whose headers never ended")
		}
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Fatalf("cut off after %v, ReadHeaderTimeout is 300ms", elapsed)
		}
	})
}
