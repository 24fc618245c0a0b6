package main

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the harness binary when
// startEchoChild runs it as the ceiling's server.
func TestMain(m *testing.M) {
	if os.Getenv(echoChildEnv) == "1" {
		if err := serveEchoChild(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestEchoCeilingRunsInItsOwnProcess checks the ceiling's server is a
// separate process on loopback that answers a webhook-shaped POST with 204,
// and that it goes away when the harness stops it.
func TestEchoCeilingRunsInItsOwnProcess(t *testing.T) {
	base, pid, stop, err := startEchoChild()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		stop()
		t.Fatalf("echo server at %q, want a loopback address", base)
	}
	if pid == os.Getpid() {
		t.Errorf("the echo server runs in the harness's process")
	}
	if _, err := processCPU(pid); err != nil {
		t.Errorf("the echo server's CPU time: %v", err)
	}
	res, err := http.Post(base+"/webhooks/providers/jitsi", "application/json", strings.NewReader(`{"eventType":"PARTICIPANT_JOINED"}`))
	if err != nil {
		stop()
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Errorf("status %d, want 204", res.StatusCode)
	}
	stop()
	if _, err := http.Post(base+"/x", "text/plain", strings.NewReader("x")); err == nil {
		t.Errorf("the echo server still answers after stop")
	}
}

// processCPU reads a process's CPU time from /proc: it grows as the
// process works, and a process that is gone has none to read.
func TestProcessCPU(t *testing.T) {
	before, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the clock-tick counter moves.
	x := 0
	deadline := time.Now().Add(10 * time.Second)
	for after := before; after == before; after, _ = processCPU(os.Getpid()) {
		for i := range 1 << 20 {
			x += i
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %s (%d)", before, x)
		}
	}
	if _, err := processCPU(0); err == nil {
		t.Error("processCPU(0) gave no error")
	}
}
