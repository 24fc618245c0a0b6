package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startPprof serves Go's profiler on addr when CALLGATE_PPROF_ADDR names
// one. It is for measuring (the load harness, cmd/loadtest, uses it) and
// refuses anything but a loopback address: profiles describe the process.
func startPprof(getenv func(string) (string, bool), stderr io.Writer) {
	addr, ok := getenv("CALLGATE_PPROF_ADDR")
	if !ok || addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(stderr, "callgate: CALLGATE_PPROF_ADDR %q is not a loopback address; profiler not started\n", addr)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil {
			fmt.Fprintf(stderr, "callgate: profiler: %v\n", err)
		}
	}()
}
