// Command loadtest is callgate's load harness: it builds the gateway, runs
// it as a child process on loopback with a fake chat app (a voip-link
// callback endpoint), a slow fake provider API and a bare Echo server (a
// child process too, as the gateway is: the ceiling), drives signed
// provider webhooks, slash commands and API calls at it, and prints, per
// scenario, throughput, latency percentiles, the ratio to the
// bare-Echo ceiling measured in the same run, the card edits the fake app
// received, and lost or duplicated updates.
//
//	go run ./cmd/loadtest                       # every scenario, SQLite
//	go run ./cmd/loadtest -store postgres -dsn 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//	go run ./cmd/loadtest -scenarios echo,hot -duration 10s -concurrency 64
//	go run ./cmd/loadtest -scenarios bigstore   # create/get at ~1k and at 1,000,000 calls (minutes)
//
// Everything listens on 127.0.0.1 only, and every scenario is bounded in
// requests and in time. See BENCHMARKS.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/adapters/voiplink"
)

const (
	apiKey     = "loadtest-key-0123456789abcdef"
	appSecret  = "loadtest-app-secret-0123456789"
	jaasSecret = "loadtest-jaas-endpoint-secret"
	linkSecret = "loadtest-link-secret-0123456789abcdef0123"
)

type options struct {
	duration    time.Duration
	concurrency int
	storeKind   string
	dsn         string
	scenarios   string
	calls       int
	storm       int
	stormWithin time.Duration
	pace        int
	binary      string
	profileDir  string
	keep        bool
	walStat     bool
	maxRequests int
	bigCalls    int
	bigRequests int
	bigBudget   float64
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "how long each throughput scenario runs at most")
	flag.IntVar(&o.concurrency, "concurrency", 32, "concurrent clients")
	flag.StringVar(&o.storeKind, "store", "sqlite", "gateway store: sqlite or postgres")
	flag.StringVar(&o.dsn, "dsn", os.Getenv("CALLGATE_LOADTEST_DSN"), "PostgreSQL DSN for -store postgres (a fresh schema is created in it and dropped after)")
	flag.StringVar(&o.scenarios, "scenarios", "echo,floor,spread,hot,paced,storm,faults,kill,create,commands", "comma-separated scenarios to run, in order")
	flag.IntVar(&o.calls, "calls", 200, "calls the spread scenario spreads webhooks over")
	flag.IntVar(&o.storm, "storm", 5000, "participant events in the storm")
	flag.DurationVar(&o.stormWithin, "storm-within", 5*time.Second, "the storm's time budget")
	flag.IntVar(&o.pace, "pace", 50, "card edits a second the fake app allows (delivery.rate and burst; voiplink paces per app)")
	flag.StringVar(&o.binary, "binary", "", "callgate binary to run (default: go build ./cmd/callgate)")
	flag.StringVar(&o.profileDir, "profile", "", "directory to write a CPU profile of the gateway per scenario (go tool pprof)")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory (and the PostgreSQL schema)")
	flag.BoolVar(&o.walStat, "walstat", false, "after each load, print the pages per commit in SQLite's write-ahead log by table and index")
	flag.IntVar(&o.maxRequests, "max-requests", 2_000_000, "bound on requests per scenario")
	flag.IntVar(&o.bigCalls, "bigstore-calls", 1_000_000, "calls the bigstore scenario fills the store to")
	flag.IntVar(&o.bigRequests, "bigstore-requests", 5000, "bound on requests per bigstore measurement (creates, and gets, at each size)")
	flag.Float64Var(&o.bigBudget, "bigstore-budget", 1.2, "bigstore fails when a p99 at -bigstore-calls exceeds this times the p99 at ~1k calls")
	flag.Parse()
	if os.Getenv(echoChildEnv) == "1" {
		if err := serveEchoChild(); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest echo:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// result is one scenario's line in the report.
type result struct {
	name       string
	n, errs    int
	elapsed    time.Duration
	lat        []time.Duration
	ratio      bool // print the ratio to the ceiling
	edits      int
	lost, dups int
	note       string
	wal        string // -walstat: the write-ahead log's pages per commit
	writer     string // the store's group writer over the scenario (writerNote)
	// cpu is the CPU time (user and system) the serving process used per
	// answered request over the scenario; 0 when unknown (the harness's
	// own process, or a gateway restarted mid-scenario).
	cpu time.Duration
}

func (r result) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

func pct(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	i := int(float64(len(lat))*p+0.5) - 1
	return lat[max(0, min(i, len(lat)-1))]
}

type harness struct {
	o       options
	dir     string
	bin     string
	port    int
	base    atomic.Pointer[string]
	gw      *gateway
	cfgPath string
	env     []string
	app     *fakeApp
	echoURL string // the ceiling: a bare Echo server in a process of its own, as the gateway is
	echoPid int    // its process
	// echoInProcessURL is the same server inside the harness's process, for
	// reference: it shares the load generator's runtime, which a separate
	// server (the gateway, or the ceiling) cannot.
	echoInProcessURL string
	slowURL          string
	client           *http.Client
	ceiling          float64
	// inProcessCeiling is the rate of the echo in the harness's process,
	// printed beside the ceiling's ratio for comparison with earlier runs.
	inProcessCeiling float64
	results          []result
	tsCursor         atomic.Int64
	// noWriterCounts turns off the reading of the gateway's group-writer
	// counters around each drive: /metrics also counts calls by state in
	// the store, a pass over a whole index at scrape time, which in a
	// store of a million calls evicts the readers' cached pages right
	// before the latencies bigstore measures.
	noWriterCounts bool
	pgDrop         func()
	pgDSN          string // the fresh schema's DSN (-store postgres)
}

func run(o options) error {
	if o.storeKind != "sqlite" && o.storeKind != "postgres" {
		return fmt.Errorf("-store %q: want sqlite or postgres", o.storeKind)
	}
	h := &harness{o: o}
	h.tsCursor.Store(time.Now().UnixMilli())
	var err error
	if h.dir, err = os.MkdirTemp("", "callgate-loadtest-"); err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(h.dir)
	}
	h.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 4 * o.concurrency, MaxIdleConnsPerHost: 4 * o.concurrency, IdleConnTimeout: time.Minute,
	}}
	h.app = newFakeApp()
	appURL, stopApp, err := listen(h.app)
	if err != nil {
		return err
	}
	defer stopApp()
	var stopEcho func()
	if h.echoURL, h.echoPid, stopEcho, err = startEchoChild(); err != nil {
		return err
	}
	defer stopEcho()
	if h.echoInProcessURL, stopEcho, err = listen(bareEcho()); err != nil {
		return err
	}
	defer stopEcho()
	var stopSlow func()
	if h.slowURL, stopSlow, err = listen(http.HandlerFunc(slowDaily)); err != nil {
		return err
	}
	defer stopSlow()

	if h.bin = o.binary; h.bin == "" {
		h.bin = filepath.Join(h.dir, "callgate")
		fmt.Fprintln(os.Stderr, "building ./cmd/callgate ...")
		if out, err := exec.Command("go", "build", "-o", h.bin, "./cmd/callgate").CombinedOutput(); err != nil {
			return fmt.Errorf("build: %v\n%s", err, out)
		}
	}
	if h.port, err = freePort(); err != nil {
		return err
	}
	storeBlock := ""
	if o.storeKind == "postgres" {
		dsn, drop, err := freshSchema(o.dsn)
		if err != nil {
			return err
		}
		if !o.keep {
			h.pgDrop = drop
			defer drop()
		}
		h.pgDSN = dsn
		storeBlock = fmt.Sprintf("store: {kind: postgres, dsn: %q}\n", dsn)
	}
	h.cfgPath = filepath.Join(h.dir, "callgate.yaml")
	cfg := fmt.Sprintf(`server:
  addr: 127.0.0.1:%d
  link_secret: %s
api:
  keys: [{name: loadtest, key: %s}]
providers:
  jitsi: {kind: jitsi, webhook_secret: %s}
  slow: {kind: daily, api_key: loadtest-daily-key, domain: slow.example.com, api_url: %s}
default_provider: jitsi
calls:
  end_when_empty: 0s
chats:
  acme: {kind: voiplink, secret: %s, callback_url: %s/callgate, timeout: 2s}
delivery:
  min_backoff: 100ms
  max_backoff: 500ms
  max_attempts: 50
  rate: %d
  burst: %d
  timeout: 2s
  lease: 5s
  poll: 100ms
rooms:
  poll: 100ms
  workers: 8
%s`, h.port, linkSecret, apiKey, jaasSecret, h.slowURL, appSecret, appURL, o.pace, o.pace, storeBlock)
	if err := os.WriteFile(h.cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
		pp, err := freePort()
		if err != nil {
			return err
		}
		h.env = append(h.env, fmt.Sprintf("CALLGATE_PPROF_ADDR=127.0.0.1:%d", pp))
	}
	if err := h.start(); err != nil {
		return err
	}
	defer func() { h.gw.stop() }()

	fmt.Printf("callgate load harness: store %s, %d clients, %s per scenario, GOMAXPROCS %d, %d CPUs, %s/%s\n",
		o.storeKind, o.concurrency, o.duration, runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	scenarios := map[string]func() error{
		"echo": h.echo, "floor": h.floor, "spread": h.spread, "hot": h.hot, "paced": h.paced, "storm": h.storm,
		"commands": h.commands, "create": h.create, "faults": h.faults, "kill": h.kill,
		"bigstore": h.bigstore, // opt-in: fills the store to a million calls
	}
	var failed []string
	for _, name := range strings.Split(o.scenarios, ",") {
		name = strings.TrimSpace(name)
		fn, ok := scenarios[name]
		if !ok {
			return fmt.Errorf("unknown scenario %q", name)
		}
		if name != "echo" && h.ceiling == 0 {
			if err := h.echo(); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "scenario %s ...\n", name)
		stopProfile := h.profile(name)
		err := fn()
		stopProfile()
		if err != nil {
			failed = append(failed, name)
			fmt.Fprintf(os.Stderr, "scenario %s: %v\n", name, err)
		}
	}
	h.report()
	for _, r := range h.results {
		if r.lost > 0 || r.dups > 0 {
			failed = append(failed, r.name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s (gateway log: %s)", strings.Join(failed, ", "), filepath.Join(h.dir, "gateway.log"))
	}
	return nil
}

func (h *harness) report() {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trequests\terrors\treq/s\tp50\tp99\tp99.9\tvs echo\tvs in-process\tCPU/req\tcard edits\tlost\tdup\t")
	ratio := func(r result, ceiling float64) string {
		if !r.ratio || ceiling <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f %%", 100*r.rate()/ceiling)
	}
	for _, r := range h.results {
		slices.Sort(r.lat)
		cpu := "-"
		if r.cpu > 0 {
			cpu = fmt.Sprintf("%.0fµs", float64(r.cpu.Nanoseconds())/1000)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t\n", r.name, r.n, r.errs, r.rate(),
			ms(pct(r.lat, 0.50)), ms(pct(r.lat, 0.99)), ms(pct(r.lat, 0.999)), ratio(r, h.ceiling), ratio(r, h.inProcessCeiling),
			cpu, r.edits, r.lost, r.dups)
	}
	tw.Flush()
	for _, r := range h.results {
		if r.note != "" {
			fmt.Printf("  %s: %s\n", r.name, r.note)
		}
		if r.writer != "" {
			fmt.Printf("  %s: %s\n", r.name, r.writer)
		}
		if r.wal != "" {
			fmt.Printf("  %s: %s\n", r.name, r.wal)
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// ---- the gateway process ----

type gateway struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

var listenRE = regexp.MustCompile(`msg="callgate listening" addr=(\S+)`)

func (h *harness) start() error {
	logf, err := os.OpenFile(filepath.Join(h.dir, "gateway.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(h.bin, "serve", "--config", h.cfgPath, "--data-dir", filepath.Join(h.dir, "data"))
	cmd.Env = append(os.Environ(), h.env...)
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = logf
	if err := cmd.Start(); err != nil {
		return err
	}
	g := &gateway{cmd: cmd, done: make(chan struct{}), log: logf}
	addr := make(chan string, 1)
	go func() {
		// Lines are read one by one only until the listening line; the
		// rest is copied in bulk, so that the harness's own CPU goes to
		// load rather than to the gateway's access log.
		br := bufio.NewReaderSize(stderr, 64<<10)
		for {
			line, err := br.ReadString('\n')
			logf.WriteString(line)
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
				break
			}
			if err != nil {
				return
			}
		}
		io.Copy(logf, br)
	}()
	go func() { cmd.Wait(); close(g.done) }()
	h.gw = g
	select {
	case a := <-addr:
		base := "http://" + a
		h.base.Store(&base)
		return nil
	case <-g.done:
		return fmt.Errorf("the gateway exited before listening; see %s", logf.Name())
	case <-time.After(30 * time.Second):
		g.kill()
		return fmt.Errorf("the gateway did not listen within 30s; see %s", logf.Name())
	}
}

func (g *gateway) kill() {
	g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.done
	g.log.Close()
}

func (g *gateway) stop() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		g.cmd.Process.Signal(syscall.SIGKILL)
		<-g.done
	}
	g.log.Close()
}

func (h *harness) url(path string) string { return *h.base.Load() + path }

// profile fetches a CPU profile of the gateway for the scenario's run.
func (h *harness) profile(name string) func() {
	if h.o.profileDir == "" {
		return func() {}
	}
	var addr string
	for _, e := range h.env {
		if a, ok := strings.CutPrefix(e, "CALLGATE_PPROF_ADDR="); ok {
			addr = a
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := int(h.o.duration.Seconds()) + 1
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer res.Body.Close()
		f, err := os.Create(filepath.Join(h.o.profileDir, name+".pprof"))
		if err != nil {
			return
		}
		io.Copy(f, res.Body)
		f.Close()
	}()
	return func() {
		select {
		case <-done:
		case <-time.After(h.o.duration + 5*time.Second):
			cancel()
			<-done
		}
	}
}

// ---- load generation ----

// drive runs at most n requests (or for d) with c workers. send performs
// request i for worker w and returns its status (or an error); ok decides
// which statuses count as answered. rate > 0 paces the requests (per
// second, over all workers). Latencies are of answered requests.
func (h *harness) drive(name string, n, c int, d time.Duration, rate float64, send func(w, i int) (int, error), ok func(int) bool) result {
	toGateway := h.gw != nil && !strings.HasPrefix(name, "echo")
	countWrites := toGateway && !h.noWriterCounts
	var before writerCounts
	if countWrites {
		before, _ = h.writerCounts()
	}
	server := h.serverPid(name)
	cpu0, cpuErr := processCPU(server)
	var next atomic.Int64
	lats := make([][]time.Duration, c)
	errs := make([]int, c)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if rate > 0 {
					at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					if at.After(deadline) {
						return
					}
					time.Sleep(time.Until(at))
				} else if time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				status, err := send(w, i)
				if err != nil || !ok(status) {
					errs[w]++
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	r := result{name: name, elapsed: time.Since(start)}
	if countWrites {
		if after, err := h.writerCounts(); err != nil {
			r.writer = fmt.Sprintf("store writer: %v", err)
		} else {
			r.writer = writerNote(after.minus(before))
		}
	}
	if h.o.walStat && h.o.storeKind == "sqlite" && toGateway {
		if note, err := h.walPages(context.Background()); err != nil {
			r.wal = fmt.Sprintf("WAL sample: %v", err)
		} else {
			r.wal = note
		}
	}
	for w := range c {
		r.lat = append(r.lat, lats[w]...)
		r.errs += errs[w]
	}
	r.n = len(r.lat)
	if cpu1, err := processCPU(server); cpuErr == nil && err == nil && server == h.serverPid(name) && r.n > 0 {
		r.cpu = (cpu1 - cpu0) / time.Duration(r.n)
	}
	return r
}

// serverPid is the process that serves the drive called name: the
// ceiling's, or the gateway's (0: the harness's own, or none).
func (h *harness) serverPid(name string) int {
	switch {
	case name == "echo (ceiling)":
		return h.echoPid
	case strings.HasPrefix(name, "echo"), h.gw == nil || h.gw.cmd.Process == nil:
		return 0
	}
	return h.gw.cmd.Process.Pid
}

// processCPU is the user and system CPU time process pid has used, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s, Linux's
// USER_HZ). It is the steadiest figure this shared machine gives: a
// request's CPU moves far less between runs than its rate.
func processCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, errors.New("no process")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

func is2xx(s int) bool { return s >= 200 && s < 300 }

func (h *harness) do(req *http.Request) (int, []byte, error) {
	res, err := h.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// writerCounts are the gateway's group-writer counters (/metrics).
type writerCounts struct{ transactions, writes, statements, together float64 }

func (a writerCounts) minus(b writerCounts) writerCounts {
	return writerCounts{a.transactions - b.transactions, a.writes - b.writes, a.statements - b.statements, a.together - b.together}
}

// writerCounts reads the gateway's group-writer counters from /metrics.
func (h *harness) writerCounts() (writerCounts, error) {
	req, _ := http.NewRequest(http.MethodGet, h.url("/metrics"), nil)
	status, body, err := h.do(req)
	if err != nil || status != http.StatusOK {
		return writerCounts{}, fmt.Errorf("GET /metrics: %d %v", status, err)
	}
	var c writerCounts
	want := map[string]*float64{"callgate_store_write_transactions_total": &c.transactions,
		"callgate_store_writes_total": &c.writes, "callgate_store_write_statements_total": &c.statements,
		"callgate_store_writes_together_total": &c.together}
	for _, m := range storeCounterLine.FindAllSubmatch(body, -1) {
		if v, ok := want[string(m[1])]; ok {
			*v, _ = strconv.ParseFloat(string(m[2]), 64)
			delete(want, string(m[1]))
		}
	}
	for name := range want {
		return writerCounts{}, fmt.Errorf("/metrics lacks %s", name)
	}
	return c, nil
}

// storeCounterLine is a line of /metrics with a store counter and its value.
var storeCounterLine = regexp.MustCompile(`(?m)^(callgate_store_\w+_total) (\S+)$`)

// writerNote says what the store's group writer did over a scenario: how
// many writes shared a commit, and the statements each cost. These are
// counts, steady where this machine's timings are not.
func writerNote(d writerCounts) string {
	if d.transactions < 0 || d.writes < 0 || d.statements < 0 {
		return "store writer: the gateway restarted during the scenario (its counters started over)"
	}
	if d.transactions == 0 {
		return "store writer: no write"
	}
	return fmt.Sprintf("store writer: %.0f writes in %.0f transactions (%.1f per commit), %.2f statements per write, %.0f applied together with others to one call",
		d.writes, d.transactions, d.writes/d.transactions, d.statements/max(d.writes, 1), d.together)
}

// ---- signed requests ----

func jaasBody(room, identity string, joined bool, ts int64, key string) []byte {
	typ := "PARTICIPANT_LEFT"
	if joined {
		typ = "PARTICIPANT_JOINED"
	}
	return fmt.Appendf(nil, `{"idempotencyKey":%q,"eventType":%q,"timestamp":%d,"fqn":"loadtest/%s","data":{"id":%q,"name":%q}}`,
		key, typ, ts, room, identity, strings.ToUpper(identity))
}

func jaasRequest(base string, body []byte) *http.Request {
	return signedJaaS(base, body, jaasSecret)
}

// signedJaaS is a JaaS webhook signed with secret.
func signedJaaS(base string, body []byte, secret string) *http.Request {
	now := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(now + "."))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, base, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Jaas-Signature", "t="+now+",v1="+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return req
}

func commandRequest(base, conversation, sender, text string) *http.Request {
	body, _ := json.Marshal(map[string]any{"conversation_id": conversation, "sender": map[string]string{"id": sender}, "text": text})
	now := time.Now()
	req, _ := http.NewRequest(http.MethodPost, base, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Callgate-Timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("X-Callgate-Signature", voiplink.Sign([]byte(appSecret), now, body))
	return req
}

func (h *harness) apiRequest(method, path string, body any) *http.Request {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.url(path), rd)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// ---- calls and what they should show ----

type apiCall struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Room  struct {
		Status string `json:"status"`
		Name   string `json:"name"`
	} `json:"room"`
	Participants []struct {
		Identity string `json:"identity"`
	} `json:"participants"`
	Surfaces []struct {
		Status        string `json:"status"`
		WantedVersion int64  `json:"wanted_version"`
		ShownVersion  int64  `json:"shown_version"`
	} `json:"surfaces"`
}

func (h *harness) getCall(id string) (apiCall, error) {
	status, body, err := h.do(h.apiRequest("GET", "/v1/calls/"+id, nil))
	if err != nil {
		return apiCall{}, err
	}
	if status != 200 {
		return apiCall{}, fmt.Errorf("GET call %s: %d %s", id, status, body)
	}
	var out struct{ Call apiCall }
	err = json.Unmarshal(body, &out)
	return out.Call, err
}

// tracked is a call under load and what the harness knows it must show.
type tracked struct {
	id, room, conv string
	version0       int64 // the call's version before the scenario
	mu             sync.Mutex
	want           map[string]presence // identity -> newest acknowledged event
	applied        int                 // acknowledged events that change the call
}

type presence struct {
	joined bool
	ts     int64
}

func (t *tracked) ack(identity string, joined bool, ts int64, effective bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.want[identity]; !ok || ts > p.ts {
		t.want[identity] = presence{joined, ts}
	}
	if effective {
		t.applied++
	}
}

func (t *tracked) expected() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for id, p := range t.want {
		if p.joined {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// newCalls creates n calls shown in conversations of the fake app and
// waits for their rooms.
func (h *harness) newCalls(prefix string, n int) ([]*tracked, error) {
	out := make([]*tracked, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	sem := make(chan struct{}, h.o.concurrency)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conv := fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e6, i)
			status, body, err := h.do(h.apiRequest("POST", "/v1/calls", map[string]any{
				"title": "load " + conv, "surfaces": []map[string]string{{"chat": "acme", "conversation_id": conv}},
			}))
			if err != nil || status != 201 {
				firstErr.CompareAndSwap(nil, fmt.Errorf("create call: %d %s %v", status, body, err))
				return
			}
			var c struct{ Call apiCall }
			json.Unmarshal(body, &c)
			out[i] = &tracked{id: c.Call.ID, conv: conv, want: map[string]presence{}}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, t := range out {
		for {
			c, err := h.getCall(t.id)
			if err == nil && c.Room.Status == "ready" {
				t.room = c.Room.Name
				if len(c.Surfaces) > 0 {
					t.version0 = c.Surfaces[0].WantedVersion
				}
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("call %s got no room in time (%v)", t.id, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out, nil
}

// verify compares each call with what was acknowledged: lost counts
// acknowledged changes missing from the call (roster differences and
// missing versions), dups versions beyond the changes acknowledged. With
// exact set, every acknowledged event must have changed the call once.
// It then waits up to cardWithin for every card to show the final state
// and returns how long that took.
func (h *harness) verify(r *result, ts []*tracked, exact bool, cardWithin time.Duration) (time.Duration, error) {
	for _, t := range ts {
		c, err := h.getCall(t.id)
		if err != nil {
			return 0, err
		}
		var got []string
		for _, p := range c.Participants {
			got = append(got, p.Identity)
		}
		slices.Sort(got)
		want := t.expected()
		r.lost += symmetricDiff(got, want)
		if len(c.Surfaces) == 0 {
			return 0, fmt.Errorf("call %s has no surface", t.id)
		}
		delta := int(c.Surfaces[0].WantedVersion - t.version0)
		t.mu.Lock()
		applied := t.applied
		t.mu.Unlock()
		switch {
		case exact && delta < applied:
			r.lost += applied - delta
		case delta > applied:
			r.dups += delta - applied
		}
	}
	start := time.Now()
	deadline := start.Add(cardWithin)
	for _, t := range ts {
		c, _ := h.getCall(t.id)
		want := c.Surfaces[0].WantedVersion
		expect := t.expected()
		for {
			cb, ok := h.app.latest(t.conv)
			if ok && cb.Version == want && symmetricDiff(identities(cb), expect) == 0 {
				break
			}
			if time.Now().After(deadline) {
				r.lost++
				return time.Since(start), fmt.Errorf("the card of call %s does not show version %d with the exact roster within %s (shows %d)", t.id, want, cardWithin, cb.Version)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return time.Since(start), nil
}

func identities(cb voiplink.Callback) []string {
	var out []string
	for _, p := range cb.Call.Participants {
		out = append(out, p.Identity)
	}
	slices.Sort(out)
	return out
}

func symmetricDiff(a, b []string) int {
	n := 0
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			n++
		}
	}
	for _, x := range b {
		if _, found := slices.BinarySearch(a, x); !found {
			n++
		}
	}
	return n
}

// ---- scenarios ----

// echo measures the ceiling: a bare Echo handler in a process of its own,
// driven exactly as the gateway is (same generator, concurrency, request
// shape and signing). The same handler inside the harness's process is
// measured after it, for reference only: client and server there share one
// Go runtime and hand requests over without crossing processes, a path no
// separate server has, so it reads well above what any server process on
// this machine can do.
func (h *harness) echo() error {
	drive := func(name, base string) result {
		return h.drive(name, h.o.maxRequests, h.o.concurrency, h.o.duration, 0, func(w, i int) (int, error) {
			body := jaasBody("room", fmt.Sprintf("w%d-%d", w, i%8), i%2 == 0, int64(i), fmt.Sprintf("echo-%d", i))
			s, _, err := h.do(jaasRequest(base+"/webhooks/providers/jitsi", body))
			return s, err
		}, is2xx)
	}
	r := drive("echo (ceiling)", h.echoURL)
	r.ratio = true
	h.ceiling = r.rate()
	h.results = append(h.results, r)
	ref := drive("echo in the harness's process", h.echoInProcessURL)
	ref.ratio = true
	h.inProcessCeiling = ref.rate()
	h.results = append(h.results, ref)
	return nil
}

// echoChildEnv makes the harness binary serve the bare Echo handler
// instead of running scenarios (startEchoChild).
const echoChildEnv = "CALLGATE_LOADTEST_ECHO_CHILD"

// bareEcho is the ceiling's handler: read the body, answer 204.
func bareEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/*", func(c echo.Context) error {
		io.Copy(io.Discard, c.Request().Body)
		return c.NoContent(http.StatusNoContent)
	})
	return e
}

// serveEchoChild is the harness binary run by startEchoChild: it serves
// bareEcho on a loopback port, writes its base URL as the first line of
// stdout, and exits when stdin closes (its parent has gone).
func serveEchoChild() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: bareEcho(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Println("http://" + ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	return srv.Close()
}

// startEchoChild runs the ceiling's server as a child process of the
// harness's own binary, so that it stands where the gateway stands, and
// returns its base URL and process id.
func startEchoChild() (string, int, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), echoChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop := func() { stdin.Close(); cmd.Wait() }
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://127.0.0.1:") {
		cmd.Process.Kill()
		stop()
		return "", 0, nil, fmt.Errorf("the echo server process did not start: %q, %v", line, err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid, stop, nil
}

// floor measures what the gateway costs before its store does anything:
// webhooks it refuses (a signature made with the wrong secret: the HTTP
// stack, the middleware, the check and a JSON error, the access line),
// then signed webhooks of a kind it reads and ignores (a JaaS
// CHAT_UPLOADED: all of the above, the parse and a 200, but no room lookup
// and no write). Their ratios to the ceiling bound what a stored webhook
// can reach on this machine: it costs the second line's work, a room
// lookup (cached) and its share of the writer on top.
func (h *harness) floor() error {
	key := fmt.Sprintf("floor-%d", time.Now().UnixNano())
	forged := h.drive("webhooks refused (bad signature)", h.o.maxRequests, h.o.concurrency, h.o.duration, 0, func(w, i int) (int, error) {
		body := jaasBody("floor-room", fmt.Sprintf("w%d", w), i%2 == 0, int64(i), fmt.Sprintf("%s-f%d", key, i))
		s, _, err := h.do(signedJaaS(h.url("/webhooks/providers/jitsi"), body, "not-"+jaasSecret))
		return s, err
	}, func(s int) bool { return s == http.StatusUnauthorized })
	forged.ratio = true
	ignored := h.drive("webhooks read and ignored (no write)", h.o.maxRequests, h.o.concurrency, h.o.duration, 0, func(w, i int) (int, error) {
		body := fmt.Appendf(nil, `{"idempotencyKey":"%s-i%d","eventType":"CHAT_UPLOADED","timestamp":%d,"fqn":"loadtest/floor-room","data":{"preAuthenticatedLink":"https://example.invalid/chat"}}`,
			key, i, i)
		s, _, err := h.do(jaasRequest(h.url("/webhooks/providers/jitsi"), body))
		return s, err
	}, func(s int) bool { return s == http.StatusOK })
	ignored.ratio = true
	h.results = append(h.results, forged, ignored)
	return nil
}

// webhooks drives participant events at the calls: worker w owns its
// identities and sends each one's events in order, so every acknowledged
// event changes its call exactly once. Unacknowledged sends are retried, as
// providers do.
func (h *harness) webhooks(name string, ts []*tracked, n int, d time.Duration, rate float64, perIdentity int) result {
	key := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	// Worker w sends to call c the k-th time: identity k%perIdentity, which
	// joins in even rounds and leaves in odd ones, so every event changes
	// the call.
	counts := make([]map[int]int, h.o.concurrency)
	for w := range counts {
		counts[w] = map[int]int{}
	}
	r := h.drive(name, n, h.o.concurrency, d, rate, func(w, i int) (int, error) {
		j := counts[w][-1]
		counts[w][-1]++
		ci := (w + j) % len(ts)
		t := ts[ci]
		k := counts[w][ci]
		counts[w][ci]++
		identity := fmt.Sprintf("w%d-%d", w, k%perIdentity)
		joined := (k/perIdentity)%2 == 0
		stamp := h.tsCursor.Add(1)
		body := jaasBody(t.room, identity, joined, stamp, fmt.Sprintf("%s-%d", key, i))
		var status int
		var err error
		for attempt := 0; attempt < 20; attempt++ {
			if status, _, err = h.do(jaasRequest(h.url("/webhooks/providers/jitsi"), body)); err == nil && status == 200 {
				t.ack(identity, joined, stamp, true)
				return status, nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return status, err
	}, func(s int) bool { return s == 200 })
	r.ratio = true
	return r
}

func (h *harness) spread() error {
	ts, err := h.newCalls("spread", h.o.calls)
	if err != nil {
		return err
	}
	edits0 := h.app.total()
	r := h.webhooks(fmt.Sprintf("webhooks, %d calls", len(ts)), ts, h.o.maxRequests, h.o.duration, 0, 4)
	_, err = h.verify(&r, ts, true, h.cardBudget(len(ts)))
	r.edits = h.app.total() - edits0
	h.results = append(h.results, r)
	return err
}

// cardBudget is how long n cards may take to catch up at the app's pace.
func (h *harness) cardBudget(n int) time.Duration {
	return 10*time.Second + time.Duration(2*n/h.o.pace)*time.Second
}

func (h *harness) hot() error {
	ts, err := h.newCalls("hot", 1)
	if err != nil {
		return err
	}
	edits0 := h.app.total()
	r := h.webhooks("webhooks, one call", ts, h.o.maxRequests, h.o.duration, 0, 4)
	_, err = h.verify(&r, ts, true, 10*time.Second)
	r.edits = h.app.total() - edits0
	h.results = append(h.results, r)
	return err
}

// paced sends webhooks at half the ceiling (or what the harness can
// generate) to see the latency at that rate.
func (h *harness) paced() error {
	ts, err := h.newCalls("paced", 50)
	if err != nil {
		return err
	}
	rate := h.ceiling / 2
	edits0 := h.app.total()
	r := h.webhooks(fmt.Sprintf("webhooks at %.0f/s (half echo)", rate), ts, h.o.maxRequests, h.o.duration, rate, 4)
	r.note = fmt.Sprintf("offered %.0f/s, achieved %.0f/s", rate, r.rate())
	_, err = h.verify(&r, ts, true, h.cardBudget(len(ts)))
	r.edits = h.app.total() - edits0
	h.results = append(h.results, r)
	if err != nil {
		return err
	}
	// The latency when the gateway is not saturated: half the rate the
	// spread scenario sustained (when it ran).
	for _, prev := range h.results {
		if !strings.HasPrefix(prev.name, "webhooks, 200 calls") {
			continue
		}
		// Fresh calls: the workers' join/leave rounds start over.
		ts, err := h.newCalls("paced-own", 50)
		if err != nil {
			return err
		}
		rate := prev.rate() / 2
		edits0 := h.app.total()
		r := h.webhooks(fmt.Sprintf("webhooks at %.0f/s (half of 200 calls')", rate), ts, h.o.maxRequests, h.o.duration, rate, 4)
		r.note = fmt.Sprintf("offered %.0f/s, achieved %.0f/s", rate, r.rate())
		_, err = h.verify(&r, ts, true, h.cardBudget(len(ts)))
		r.edits = h.app.total() - edits0
		h.results = append(h.results, r)
		return err
	}
	return nil
}

// storm: 5,000 participant events on one call within 5 s, all
// acknowledged, the roster exact, the card exact within 2 s after, and its
// edits paced.
func (h *harness) storm() error {
	ts, err := h.newCalls("storm", 1)
	if err != nil {
		return err
	}
	t := ts[0]
	time.Sleep(time.Second) // let the first card's pace budget refill
	edits0 := h.app.count(t.conv)
	rate := float64(h.o.storm) / h.o.stormWithin.Seconds() * 1.05
	r := h.webhooks(fmt.Sprintf("storm %d events, one call", h.o.storm), ts, h.o.storm, h.o.stormWithin+time.Second, rate, 100)
	r.ratio = false
	cardAfter, verr := h.verify(&r, ts, true, 2*time.Second)
	r.edits = h.app.count(t.conv) - edits0
	gap := h.app.minGap(t.conv)
	r.note = fmt.Sprintf("%d/%d acknowledged in %s; card exact %s after the storm; %d edits, closest two %s apart (pace %d/s, burst %d)",
		r.n, h.o.storm, r.elapsed.Round(time.Millisecond), cardAfter.Round(time.Millisecond), r.edits, gap.Round(time.Millisecond), h.o.pace, h.o.pace)
	if r.n != h.o.storm {
		r.lost += h.o.storm - r.n
	}
	h.results = append(h.results, r)
	if verr != nil {
		return verr
	}
	if r.elapsed > h.o.stormWithin+500*time.Millisecond {
		return fmt.Errorf("the storm took %s, budget %s", r.elapsed, h.o.stormWithin)
	}
	return nil
}

// commands sends signed /call commands naming a provider whose rooms take
// 5 s to create; the answers must not wait for it.
func (h *harness) commands() error {
	var created sync.Map
	command := func(w, i int) (int, error) {
		conv := fmt.Sprintf("cmd-%d-%d", time.Now().UnixNano()%1e9, i)
		status, body, err := h.do(commandRequest(h.url("/webhooks/chats/acme"), conv, fmt.Sprintf("u%d", w), "/call video slow Load test"))
		if err == nil && status == 200 {
			var msg voiplink.Message
			if json.Unmarshal(body, &msg) != nil || msg.Call == nil {
				return 0, errors.New("answer without a call")
			}
			created.Store(msg.Call.ID, conv)
		}
		return status, err
	}
	ok := func(s int) bool { return s == 200 }
	r := h.drive("slash commands (provider 5 s)", h.o.maxRequests, h.o.concurrency, h.o.duration, 0, command, ok)
	r.ratio = true
	// The answer's latency when the gateway is not saturated: offered at
	// half the rate it just sustained, the provider still taking 5 s.
	half := r.rate() / 2
	p := h.drive(fmt.Sprintf("slash commands at %.0f/s (half that)", half), h.o.maxRequests, h.o.concurrency, h.o.duration, half, command, ok)
	p.ratio = true
	p.note = fmt.Sprintf("offered %.0f/s, achieved %.0f/s; the answer's p99 is the figure to read (target 50 ms)", half, p.rate())
	r.n += p.n
	// Every answered command left a call behind.
	n := 0
	created.Range(func(k, _ any) bool {
		n++
		if n%50 == 0 { // a sample: reading them all back would dominate
			if _, err := h.getCall(k.(string)); err != nil {
				r.lost++
			}
		}
		return true
	})
	if n != r.n {
		r.lost += r.n - n
	}
	r.n -= p.n
	h.results = append(h.results, r, p)
	return nil
}

func (h *harness) create() error {
	r := h.drive("POST /v1/calls", h.o.maxRequests, h.o.concurrency, h.o.duration, 0, func(w, i int) (int, error) {
		status, _, err := h.do(h.apiRequest("POST", "/v1/calls", map[string]any{"title": "load", "type": "audio"}))
		return status, err
	}, func(s int) bool { return s == 201 })
	r.ratio = true
	h.results = append(h.results, r)
	return nil
}

// faults: the app answers 429 and 500 for a while; every webhook is sent
// twice and neighbours are swapped (reordered). The cards must end exact.
func (h *harness) faults() error {
	ts, err := h.newCalls("faults", 20)
	if err != nil {
		return err
	}
	edits0 := h.app.total()
	h.app.failFor(2*time.Second, http.StatusTooManyRequests, http.StatusInternalServerError)
	key := fmt.Sprintf("faults-%d", time.Now().UnixNano())
	var sent atomic.Int64
	r := h.drive("faults: app 429/500, dup+reorder", h.o.maxRequests, h.o.concurrency, h.o.duration, 0, func(w, i int) (int, error) {
		t := ts[i%len(ts)]
		identity := fmt.Sprintf("f%d", (i/len(ts))%10)
		// Two events for one identity, sent newest first, each twice.
		s1, s2 := h.tsCursor.Add(1), h.tsCursor.Add(1)
		first := jaasBody(t.room, identity, true, s1, fmt.Sprintf("%s-%d-a", key, i))
		second := jaasBody(t.room, identity, i%3 == 0, s2, fmt.Sprintf("%s-%d-b", key, i))
		for _, b := range [][]byte{second, first, second, first} {
			for attempt := 0; ; attempt++ {
				status, _, err := h.do(jaasRequest(h.url("/webhooks/providers/jitsi"), b))
				if err == nil && status == 200 {
					break
				}
				if attempt == 20 {
					return status, err
				}
				time.Sleep(50 * time.Millisecond)
			}
			sent.Add(1)
		}
		t.ack(identity, true, s1, false)
		t.ack(identity, i%3 == 0, s2, false)
		return 200, nil
	}, func(s int) bool { return s == 200 })
	// Each pair changes the call at most twice (the older event is
	// usually stale by the time it lands): count the unique events as the
	// upper bound of versions.
	for _, t := range ts {
		t.mu.Lock()
		t.applied = 0
		t.mu.Unlock()
	}
	perCall := make(map[*tracked]int)
	for i := range r.n {
		perCall[ts[i%len(ts)]] += 2
	}
	for t, n := range perCall {
		t.applied = n
	}
	r.ratio = false
	_, err = h.verify(&r, ts, false, 30*time.Second)
	r.edits = h.app.total() - edits0
	r.note = fmt.Sprintf("%d webhook requests (each event twice, newest first); app refused %d callbacks with 429/500", sent.Load(), h.app.refused.Load())
	h.results = append(h.results, r)
	return err
}

// kill: webhooks on a few calls; halfway the gateway is killed with
// SIGKILL and restarted on the same data. Providers retry until
// acknowledged; every acknowledged event must be there, once.
func (h *harness) kill() error {
	ts, err := h.newCalls("kill", 5)
	if err != nil {
		return err
	}
	edits0 := h.app.total()
	killed := make(chan error, 1)
	go func() {
		time.Sleep(h.o.duration / 2)
		h.gw.kill()
		killed <- h.start()
	}()
	key := fmt.Sprintf("kill-%d", time.Now().UnixNano())
	counts := make([]int, h.o.concurrency)
	r := h.drive("kill -9 and restart mid-run", h.o.maxRequests, h.o.concurrency, h.o.duration, 0, func(w, i int) (int, error) {
		// Worker w keeps to one call, so its events on it alternate.
		k := counts[w]
		counts[w]++
		t := ts[w%len(ts)]
		identity := fmt.Sprintf("k%d-%d", w, k%3)
		joined := (k/3)%2 == 0
		stamp := h.tsCursor.Add(1)
		body := jaasBody(t.room, identity, joined, stamp, fmt.Sprintf("%s-%d", key, i))
		deadline := time.Now().Add(60 * time.Second)
		for {
			status, _, err := h.do(jaasRequest(h.url("/webhooks/providers/jitsi"), body))
			if err == nil && status == 200 {
				t.ack(identity, joined, stamp, true)
				return 200, nil
			}
			if time.Now().After(deadline) {
				return status, err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}, func(s int) bool { return s == 200 })
	if err := <-killed; err != nil {
		return err
	}
	r.ratio = false
	_, err = h.verify(&r, ts, true, 30*time.Second)
	r.edits = h.app.total() - edits0
	r.note = "latencies include waiting for the restart"
	h.results = append(h.results, r)
	return err
}

// ---- the fake chat app ----

type fakeApp struct {
	mu      sync.Mutex
	convs   map[string]*conversation
	bodies  map[string][]byte
	edits   int
	failTil time.Time
	fails   []int
	refused atomic.Int64
	bad     atomic.Int64
}

type conversation struct {
	latest voiplink.Callback
	seen   bool
	edits  int
	last   time.Time
	minGap time.Duration
}

func newFakeApp() *fakeApp {
	return &fakeApp{convs: map[string]*conversation{}, bodies: map[string][]byte{}}
}

func (a *fakeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := voiplink.Verify(r.Header, body, time.Now(), 5*time.Minute, []byte(appSecret)); err != nil {
		a.bad.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var cb voiplink.Callback
	if err := json.Unmarshal(body, &cb); err != nil {
		a.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	now := time.Now()
	if now.Before(a.failTil) {
		status := a.fails[int(a.refused.Add(1))%len(a.fails)]
		a.mu.Unlock()
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(status)
		return
	}
	if first, ok := a.bodies[cb.DeliveryID]; ok && !bytes.Equal(first, body) {
		a.bad.Add(1)
	}
	a.bodies[cb.DeliveryID] = body
	c := a.convs[cb.ConversationID]
	if c == nil {
		c = &conversation{}
		a.convs[cb.ConversationID] = c
	}
	if c.seen {
		if gap := now.Sub(c.last); c.minGap == 0 || gap < c.minGap {
			c.minGap = gap
		}
	}
	c.seen, c.last = true, now
	c.edits++
	a.edits++
	if cb.Version > c.latest.Version {
		c.latest = cb
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"message_id":"m-%s"}`, cb.Call.ID)
}

func (a *fakeApp) latest(conv string) (voiplink.Callback, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.convs[conv]
	if c == nil {
		return voiplink.Callback{}, false
	}
	return c.latest, true
}

func (a *fakeApp) count(conv string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.convs[conv]; c != nil {
		return c.edits
	}
	return 0
}

func (a *fakeApp) minGap(conv string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.convs[conv]; c != nil {
		return c.minGap
	}
	return 0
}

func (a *fakeApp) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.edits
}

func (a *fakeApp) failFor(d time.Duration, statuses ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failTil, a.fails = time.Now().Add(d), statuses
}

// slowDaily is a Daily REST API whose rooms take 5 s to create.
func slowDaily(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/rooms":
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
			return
		}
		name := "slow-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"name":%q,"url":"https://slow.example.com/%s"}`, name, name, name)
	default:
		// Status checks are "unclear": the reconciler changes nothing.
		w.WriteHeader(http.StatusServiceUnavailable)
	}
}

// ---- plumbing ----

func listen(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// freshSchema creates a schema for this run and returns a DSN using it.
func freshSchema(dsn string) (string, func(), error) {
	if dsn == "" {
		return "", nil, errors.New("-store postgres needs -dsn (or CALLGATE_LOADTEST_DSN)")
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "", nil, errors.New("-dsn must be a postgres:// URL")
	}
	if h := u.Hostname(); h != "localhost" && !net.ParseIP(h).IsLoopback() {
		return "", nil, fmt.Errorf("-dsn host %q is not loopback: the harness only runs on loopback", h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("loadtest_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, dsn); err == nil {
			conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(ctx)
		}
	}
	return u.String(), drop, nil
}
