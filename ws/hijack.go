package ws

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
)

// The WebSocket library keeps, for the life of a socket, the bufio reader
// and writer the HTTP server hands over on hijack: 4 KiB each. At 10,000
// sockets that is 80 MB of heap that keeps the collector busy near the
// memory limit, for frames that are a few hundred bytes. slimHijacker
// hands the library smaller ones instead; a larger frame still goes
// through, in more read or write calls.
const (
	hijackReadBuffer  = 512
	hijackWriteBuffer = 2048
)

// slimHijacker wraps a ResponseWriter so that Hijack returns small buffers.
type slimHijacker struct{ http.ResponseWriter }

// Unwrap lets http.ResponseController reach the server's writer (the
// deadlines Serve clears).
func (s slimHijacker) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s slimHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("ws: hijack: %w", err)
	}
	var r io.Reader = nc
	// Bytes the server read past the request (a client that did not wait
	// for the 101) must come first; the server's reader is dropped.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), nc)
	}
	return nc, bufio.NewReadWriter(bufio.NewReaderSize(r, hijackReadBuffer), bufio.NewWriterSize(nc, hijackWriteBuffer)), nil
}
