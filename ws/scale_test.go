package ws_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/callgate/callgate/ws"
)

// The scale test: CALLGATE_WS_BENCH=1 go test -run TestWSScale -v ./ws/
// (CALLGATE_WS_BENCH_SOCKETS, default 10000, and CALLGATE_WS_BENCH_RINGS,
// default 1000). The gateway runs in a child process (this test binary in
// server mode) so its RSS is measured alone; this process holds the
// clients. It reports the sockets held, the server's RSS and goroutines,
// and the latency of ring delivery: from a caller's request to the
// callee's socket receiving videochatRequested (p50/p99/max), while every
// socket stays connected.
func TestWSScale(t *testing.T) {
	if os.Getenv("CALLGATE_WS_BENCH") == "" {
		t.Skip("set CALLGATE_WS_BENCH=1 to run the WebSocket scale benchmark")
	}
	sockets := envInt("CALLGATE_WS_BENCH_SOCKETS", 10000)
	rings := envInt("CALLGATE_WS_BENCH_RINGS", 1000)

	cmd := exec.Command(os.Args[0], "-test.run=^TestWSBenchServer$", "-test.v")
	cmd.Env = append(os.Environ(), "CALLGATE_WS_BENCH_SERVER=1")
	if os.Getenv("GOMEMLIMIT") == "" {
		// The deployment knob for a memory budget: the collector works harder
		// near it instead of letting the heap double.
		cmd.Env = append(cmd.Env, "GOMEMLIMIT=270MiB")
	}
	if d := os.Getenv("CALLGATE_WS_BENCH_SERVER_GODEBUG"); d != "" {
		// e.g. gctrace=1: the collector's cycles, timed from the server's
		// start, to set against the ring phase reported below.
		cmd.Env = append(cmd.Env, "GODEBUG="+d)
	}
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	serverStart := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	var base string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "WSBENCH_URL "); ok {
			base = u
			break
		}
	}
	if base == "" {
		t.Fatal("server did not start")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	wsBase := "ws" + strings.TrimPrefix(base, "http")
	rssBefore := rssKB(t, cmd.Process.Pid)

	type sock struct {
		c    *websocket.Conn
		rung chan time.Time
	}
	socks := make([]*sock, sockets)
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range sockets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, wsBase+"/v1/ws?token="+userToken(t, "u"+strconv.Itoa(i)), nil)
			if err != nil {
				failed.Add(1)
				return
			}
			s := &sock{c: c, rung: make(chan time.Time, 64)}
			socks[i] = s
			// Wait for the session frame (the socket is registered), then
			// read forever, noting rings.
			ready := make(chan struct{})
			go func() {
				first := true
				for {
					_, b, err := c.Read(context.Background())
					if err != nil {
						return
					}
					if first {
						first = false
						close(ready)
						continue
					}
					if bytes.Contains(b, []byte(`"videochat:videochatRequested"`)) {
						select {
						case s.rung <- time.Now():
						default:
						}
					}
				}
			}()
			select {
			case <-ready:
			case <-ctx.Done():
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	connectTime := time.Since(start)
	if failed.Load() > 0 {
		t.Fatalf("%d of %d sockets failed to connect", failed.Load(), sockets)
	}
	time.Sleep(time.Second)
	rssConnected := rssKB(t, cmd.Process.Pid)

	// Rings between distinct pairs, one at a time, while all sockets are open.
	ringStart := time.Since(serverStart)
	var lat []time.Duration
	var sentAt []time.Duration // since the server started
	for r := 0; r < rings; r++ {
		caller, callee := socks[(2*r)%sockets], socks[(2*r+1)%sockets]
		target := "u" + strconv.Itoa((2*r+1)%sockets)
		msg, _ := json.Marshal(map[string]any{"name": "videochat:requestDirectVideochat", "data": map[string]any{"targetUser": target}, "event": map[string]any{"id": strconv.Itoa(r)}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sent := time.Now()
		if err := caller.c.Write(ctx, websocket.MessageText, msg); err != nil {
			cancel()
			t.Fatal(err)
		}
		select {
		case at := <-callee.rung:
			lat = append(lat, at.Sub(sent))
			sentAt = append(sentAt, sent.Sub(serverStart))
		case <-ctx.Done():
			cancel()
			t.Fatalf("ring %d not delivered", r)
		}
		cancel()
	}
	ringEnd := time.Since(serverStart)
	var slow []string
	for i, d := range lat {
		if d > 10*time.Millisecond {
			slow = append(slow, fmt.Sprintf("#%d@+%v %v", i, sentAt[i].Round(time.Millisecond), d.Round(100*time.Microsecond)))
		}
	}
	t.Logf("rings from server +%v to +%v; rings over 10 ms: %v", ringStart.Round(time.Millisecond), ringEnd.Round(time.Millisecond), slow)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	rssAfter := rssKB(t, cmd.Process.Pid)
	report := fmt.Sprintf("sockets=%d connect_time=%v server_rss_idle=%dMB server_rss_connected=%dMB server_rss_after_rings=%dMB rings=%d ring_p50=%v ring_p99=%v ring_max=%v gomaxprocs=%d",
		sockets, connectTime.Round(time.Millisecond), rssBefore/1024, rssConnected/1024, rssAfter/1024, len(lat),
		pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond), runtime.GOMAXPROCS(0))
	t.Log(report)
	fmt.Println("WSBENCH", report)
	for _, s := range socks {
		s.c.CloseNow()
	}
}

// TestWSBenchServer is the server half of TestWSScale, run in a child process.
func TestWSBenchServer(t *testing.T) {
	if os.Getenv("CALLGATE_WS_BENCH_SERVER") == "" {
		t.Skip("the server half of TestWSScale")
	}
	// The deployed defaults (room worker poll 1s, timers every 1s, the
	// hub's 25s heartbeat and 1s poll), unless CALLGATE_WS_BENCH_HARNESS=1
	// asks for the test harness's short intervals (10 ms room poll, 20 ms
	// timers, 5s heartbeat, 200 ms hub poll), which add load of their own.
	o := gwOptions{roomPoll: time.Second, timerEvery: time.Second}
	heartbeat, poll := 25*time.Second, time.Second
	if os.Getenv("CALLGATE_WS_BENCH_HARNESS") != "" {
		o = gwOptions{}
		heartbeat, poll = 5*time.Second, 200*time.Millisecond
	}
	if d, err := time.ParseDuration(os.Getenv("CALLGATE_WS_BENCH_HEARTBEAT")); err == nil {
		heartbeat = d
	}
	o.tune = func(o *ws.Options) { o.Heartbeat, o.Poll = heartbeat, poll }
	g := newGateway(t, o)
	if os.Getenv("CALLGATE_WS_BENCH_PPROF") != "" {
		// net/http/pprof (imported by this file) on a port of its own.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(os.Stderr, "WSBENCH_PPROF http://"+ln.Addr().String()+"/debug/pprof/")
		go http.Serve(ln, nil)
	}
	fmt.Println("WSBENCH_URL " + g.url)
	if os.Getenv("CALLGATE_WS_BENCH_MEMSTATS") != "" {
		for {
			time.Sleep(2 * time.Second)
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			fmt.Fprintf(os.Stderr, "memstats sockets=%d goroutines=%d heap_inuse=%dMB stack_inuse=%dMB sys=%dMB\n",
				g.hub.Sockets(), runtime.NumGoroutine(), m.HeapInuse>>20, m.StackInuse>>20, m.Sys>>20)
		}
	}
	select {} // killed by the parent
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func rssKB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
