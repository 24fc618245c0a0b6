package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/callgate/callgate/admin"
	"github.com/callgate/callgate/api"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/config"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/joinlink"
	"github.com/callgate/callgate/store"
	"github.com/callgate/callgate/templates"
	"github.com/callgate/callgate/webhooks"
	"github.com/callgate/callgate/ws"
)

// serve runs the gateway until ctx ends, then drains in-flight requests and
// stops. kinds are the provider and chat kinds it supports. listening, when
// not nil, is told the bound address (tests listen on port 0).
func serve(ctx context.Context, kinds kindList, opts serveOptions, logOut io.Writer, listening func(addr string)) error {
	var cfg *config.Config
	var err error
	if opts.configFile != "" {
		cfg, err = config.Load(opts.configFile, opts.getenv, kinds.config())
	} else {
		cfg, err = config.Default(kinds.config())
	}
	if err != nil {
		return err
	}
	if opts.addr != "" {
		cfg.Server.Addr = opts.addr
	}
	dataDir := firstNonEmpty(opts.dataDir, cfg.Server.DataDir, "./callgate-data")
	// Lines leave in batches (see logBuffer); whatever is held is written
	// out when serve returns, whichever way it returns.
	logBuf := newLogBuffer(logOut, logFlushDelay, logBufferLimit)
	defer logBuf.Close()
	log := newLogger(cfg.Log, logBuf)

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Addr, err)
	}
	defer ln.Close()
	publicURL := strings.TrimRight(cfg.Server.PublicURL, "/")
	if publicURL == "" {
		publicURL = defaultPublicURL(ln.Addr())
	}

	storePath := cfg.Store.Path
	if storePath == "" {
		storePath = filepath.Join(dataDir, "callgate.db")
	}
	target := storePath
	if cfg.Store.Kind == "postgres" {
		target = cfg.Store.DSN
	}
	st, err := store.Open(ctx, cfg.Store.Kind, target)
	if err != nil {
		return fmt.Errorf("open %s store: %w", cfg.Store.Kind, err)
	}
	defer st.Close()

	providers, err := configureProviders(ctx, cfg, kinds, publicURL, log)
	if err != nil {
		return err
	}
	pages, err := templates.Load(cfg.Templates.Dir)
	if err != nil {
		return err
	}
	chats, err := configureChats(ctx, cfg, kinds, chatDeps{publicURL: publicURL, log: log, templates: pages, installations: st})
	if err != nil {
		return err
	}
	// Workers are woken after every change; across replicas through
	// PostgreSQL LISTEN/NOTIFY. Nothing depends on a wake-up arriving.
	wake := calls.NewWake()
	var relay *store.WakeRelay
	if cfg.Store.Kind == store.EnginePostgres {
		relay = store.NewWakeRelay(cfg.Store.DSN, wake, log)
		wake.SetRelay(relay.Notify)
	}
	svc, err := calls.NewService(calls.ServiceConfig{
		Store: st, Providers: providers.byName, DefaultProvider: cfg.DefaultProvider, Logger: log, Wake: wake,
		RingTimeout: cfg.Calls.RingTimeout, MaxDuration: cfg.Calls.MaxDuration, TokenTTL: cfg.Calls.TokenTTL,
		GuestJoin: cfg.Calls.AllowsGuests(), RoomWait: cfg.Rooms.Wait, EndWhenEmpty: cfg.Calls.EndWhenEmpty,
		EventsAfter: cfg.Retention.EventsAfter, MarksAfter: cfg.Retention.MarksAfter,
	})
	if err != nil {
		return err
	}
	linkSecret := []byte(cfg.Server.LinkSecret)
	if len(linkSecret) == 0 {
		if linkSecret, _, err = loadOrCreateSecret(filepath.Join(dataDir, "link-secret")); err != nil {
			return err
		}
	}
	linkSecrets := [][]byte{linkSecret}
	if cfg.Server.PreviousLinkSecret != "" {
		linkSecrets = append(linkSecrets, []byte(cfg.Server.PreviousLinkSecret))
	}
	links, err := joinlink.NewSigner(nil, linkSecrets...)
	if err != nil {
		return err
	}

	proxies, err := parsePrefixes(cfg.Server.TrustedProxies)
	if err != nil {
		return err
	}
	srv := httpserver.New(httpserver.Options{
		Logger: log, BodyLimit: cfg.Server.BodyLimit, Ready: st,
		TrustedProxies: proxies, MetricsToken: cfg.Server.MetricsToken,
	})
	srv.Registry.MustRegister(&storeGauges{store: st}, writerCounters{stats: st.WriterStats})
	metrics, err := newWorkerMetrics(srv.Registry)
	if err != nil {
		return err
	}
	apiOpts := api.Options{
		Service: svc, PublicURL: publicURL, Links: links, Pages: pages,
		ProviderKinds: providers.kinds, Chats: chats.names, Logger: log, REST: cfg.API.IsEnabled(),
		AuthFailureLimit: rateLimit(cfg.Server.RateLimits.AuthFailures, cfg.Server.RateLimits.MaxClients),
		JoinLimit:        rateLimit(cfg.Server.RateLimits.Join, cfg.Server.RateLimits.MaxClients),
	}
	if cfg.API.IsEnabled() {
		keys, err := apiKeys(cfg, dataDir, log)
		if err != nil {
			return err
		}
		apiOpts.Keys = keys
		for _, s := range []string{cfg.API.UserTokenSecret, cfg.API.PreviousUserTokenSecret} {
			if s != "" {
				apiOpts.UserTokenSecrets = append(apiOpts.UserTokenSecrets, []byte(s))
			}
		}
	}
	// Leases name their holder: a replica that dies is taken over once its
	// leases run out.
	owner := replicaName()
	var hub *ws.Hub
	if cfg.API.IsEnabled() && cfg.WS.IsEnabled() {
		hooks := make([]ws.Webhook, 0, len(cfg.WS.Webhooks))
		for _, w := range cfg.WS.Webhooks {
			hooks = append(hooks, ws.Webhook{URL: w.URL, Secret: w.Secret})
		}
		hub, err = ws.New(ws.Options{
			Service: svc, Store: st, Wake: wake, ProviderKinds: providers.kinds, Replica: owner,
			Secret: linkSecret, AllowedOrigins: cfg.WS.AllowedOrigins, Heartbeat: cfg.WS.Heartbeat,
			MaxMessage: cfg.WS.MaxMessageBytes, SendQueue: cfg.WS.SendQueue, RingFresh: cfg.WS.RingFresh,
			PushURL: cfg.WS.Push.URL, PushSecret: cfg.WS.Push.Secret, Webhooks: hooks, Logger: log,
			HookAttempts: cfg.WS.Deliveries.MaxAttempts, HookBackoff: cfg.WS.Deliveries.MinBackoff,
			HookMaxBackoff: cfg.WS.Deliveries.MaxBackoff,
		})
		if err != nil {
			return err
		}
		if err := hub.Start(ctx); err != nil {
			return fmt.Errorf("websocket hub: %w", err)
		}
		srv.Registry.MustRegister(&wsDeliveryGauges{count: st.CountWSDeliveries})
		apiOpts.WebSocket = hub
	}
	if _, err := api.Register(srv.Echo, apiOpts); err != nil {
		return err
	}
	// Health is per replica: the admin page shows the webhooks this
	// process received.
	health := webhooks.NewHealth()
	if err := webhooks.RegisterProviders(srv.Echo, webhooks.ProviderOptions{
		Receivers: providers.receivers, Applier: svc, PublicURL: publicURL, Logger: log, Registry: srv.Registry, Health: health,
	}); err != nil {
		return err
	}
	joinLinks := joinlink.Links{PublicURL: publicURL, Signer: links}
	if err := webhooks.RegisterChats(srv.Echo, webhooks.ChatOptions{
		Chats: chats.intakes, RoomStrategies: chats.strategies, Runner: svc, Links: joinLinks, LinkTTL: cfg.Calls.TokenTTL, Replays: st,
		PublicURL: publicURL, Logger: log, Registry: srv.Registry, Health: health,
	}); err != nil {
		return err
	}
	if err := admin.Register(srv.Echo, admin.Options{
		Service: svc, Outbox: st, Wake: wake, Health: health, Token: cfg.Admin.Token, SSOHeader: cfg.Admin.SSOHeader,
		TrustedProxies: proxies, Logger: log, Done: ctx.Done(),
	}); err != nil {
		return err
	}
	rooms := calls.NewRoomWorker(calls.RoomWorkerConfig{
		Store: st, Providers: providers.byName, Wake: wake, Logger: log, Metrics: metrics, Owner: owner,
		Policy:         calls.RetryPolicy{MinBackoff: cfg.Rooms.MinBackoff, MaxBackoff: cfg.Rooms.MaxBackoff, MaxAttempts: cfg.Rooms.MaxAttempts},
		AttemptTimeout: cfg.Rooms.AttemptTimeout, Deadline: cfg.Rooms.Deadline, Poll: cfg.Rooms.Poll, MaxDuration: cfg.Calls.MaxDuration,
	})
	reconciler := calls.NewReconciler(calls.ReconcilerConfig{
		Store: st, Providers: providers.byName, Wake: wake, Logger: log,
		Grace: cfg.Rooms.ReconcileGrace, Batch: cfg.Rooms.ReconcileBatch,
	})
	outbox := calls.NewOutbox(calls.OutboxConfig{
		Store: st, Posters: chats.posters, JoinURL: joinLinks.Stable, Wake: wake, Logger: log, Metrics: metrics, Owner: owner,
		Policy: calls.RetryPolicy{MinBackoff: cfg.Delivery.MinBackoff, MaxBackoff: cfg.Delivery.MaxBackoff, MaxAttempts: cfg.Delivery.MaxAttempts},
		Rate:   cfg.Delivery.Rate, Burst: cfg.Delivery.Burst, Timeout: cfg.Delivery.Timeout, Lease: cfg.Delivery.Lease, Poll: cfg.Delivery.Poll,
	})

	httpSrv := httpserver.NewHTTPServer(srv.Echo, httpserver.HTTPOptions{
		MaxHeaderBytes: cfg.Server.MaxHeaderBytes, ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout: cfg.Server.ReadTimeout, WriteTimeout: cfg.Server.WriteTimeout, IdleTimeout: cfg.Server.IdleTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
	var wg sync.WaitGroup
	timersCtx, stopTimers := context.WithCancel(context.WithoutCancel(ctx))
	background := []func(context.Context){
		func(ctx context.Context) { svc.RunTimers(ctx, time.Second) },
		func(ctx context.Context) { rooms.Run(ctx, cfg.Rooms.Workers) },
		func(ctx context.Context) { outbox.Run(ctx, cfg.Delivery.Workers) },
		func(ctx context.Context) { reconciler.Run(ctx, cfg.Rooms.ReconcileInterval) },
	}
	if relay != nil {
		background = append(background, relay.Run)
	}
	for _, run := range background {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(timersCtx)
		}()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	log.Info("callgate listening",
		"addr", ln.Addr().String(), "public_url", publicURL, "store", cfg.Store.Kind, "data_dir", dataDir,
		"providers", providers.describe(), "default_provider", cfg.DefaultProvider, "chats", strings.Join(sortedKeys(chats.names), ","),
		"rest_api", cfg.API.IsEnabled(), "version", buildVersion())
	// Start-up lines are what an operator (or a supervisor waiting for the
	// listening line) reads first: they are not held back.
	logBuf.Flush()
	if listening != nil {
		listening(ln.Addr().String())
	}

	select {
	case err := <-serveErr:
		if hub != nil {
			hub.Close(context.WithoutCancel(ctx))
		}
		stopTimers()
		wg.Wait()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests", "timeout", cfg.Server.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout)
	defer cancel()
	if hub != nil {
		// Hijacked sockets are not drained by Shutdown: say goodbye (1001).
		hub.Close(shutdownCtx)
	}
	err = httpSrv.Shutdown(shutdownCtx)
	stopTimers()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// newLogger writes to buf; records at warning level and above are
// written out at once.
func newLogger(c config.Log, buf *logBuffer) *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(buf, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(buf, opts)
	}
	return slog.New(flushingHandler{Handler: h, buf: buf, level: slog.LevelWarn})
}

// defaultPublicURL is where a person on this machine reaches the listener.
func defaultPublicURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://localhost"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() || ip.IsLoopback() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// apiKeys returns the configured keys, or the generated one kept in the
// data directory. The key itself is never logged, only where it is.
func apiKeys(cfg *config.Config, dataDir string, log *slog.Logger) ([]api.Key, error) {
	var keys []api.Key
	for _, k := range cfg.API.Keys {
		keys = append(keys, api.Key{Name: k.Name, Secret: k.Key})
	}
	if len(keys) > 0 {
		return keys, nil
	}
	path := filepath.Join(dataDir, "api-key")
	key, created, err := loadOrCreateSecret(path)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("no API key configured: generated one; send it as \"Authorization: Bearer <key>\"", "file", path)
	}
	return []api.Key{{Name: "generated", Secret: string(key)}}, nil
}

// loadOrCreateSecret reads a secret file, or creates it (mode 0600) with 32
// random bytes in hex. O_EXCL makes two processes starting at once agree.
func loadOrCreateSecret(path string) (secret []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return nil, false, fmt.Errorf("%s holds a secret shorter than 32 characters; delete it to generate a new one", path)
		}
		return []byte(s), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, err
	}
	s := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateSecret(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write %s: %w", path, err)
	}
	return []byte(s), true, nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// replicaName names this process in work leases: the host name and a
// random suffix, so two processes on one host differ.
func replicaName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "callgate"
	}
	return host + "-" + calls.RandomString(6)
}

// rateLimit turns a configured budget into the limiter's.
func rateLimit(r config.RateLimit, maxClients int) httpserver.RateLimit {
	return httpserver.RateLimit{Disabled: !r.IsEnabled(), Rate: r.Rate, Burst: r.Burst, MaxClients: maxClients}
}

// parsePrefixes reads trusted proxies: CIDRs, or single addresses.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("server.trusted_proxies: %q is not an address or CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
