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
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgate/callgate/adapters/jitsi"
	"github.com/callgate/callgate/api"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/config"
	"github.com/callgate/callgate/httpserver"
	"github.com/callgate/callgate/joinlink"
	"github.com/callgate/callgate/store"
	"github.com/callgate/callgate/templates"
	"github.com/callgate/callgate/webhooks"
)

// serve runs the gateway until ctx ends, then drains in-flight requests and
// stops. listening, when not nil, is told the bound address (tests listen
// on port 0).
func serve(ctx context.Context, opts serveOptions, logOut io.Writer, listening func(addr string)) error {
	cfg := config.Default()
	if opts.configFile != "" {
		var err error
		if cfg, err = config.Load(opts.configFile, opts.getenv); err != nil {
			return err
		}
	}
	if opts.addr != "" {
		cfg.Server.Addr = opts.addr
	}
	dataDir := firstNonEmpty(opts.dataDir, cfg.Server.DataDir, "./callgate-data")
	log := newLogger(cfg.Log, logOut)

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

	providers, err := buildProviders(cfg)
	if err != nil {
		return err
	}
	svc, err := calls.NewService(calls.ServiceConfig{
		Store: st, Providers: providers.byName, DefaultProvider: cfg.DefaultProvider, Logger: log,
		RingTimeout: cfg.Calls.RingTimeout, MaxDuration: cfg.Calls.MaxDuration, TokenTTL: cfg.Calls.TokenTTL,
		GuestJoin: cfg.Calls.AllowsGuests(),
	})
	if err != nil {
		return err
	}
	pages, err := templates.Load(cfg.Templates.Dir)
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

	srv := httpserver.New(httpserver.Options{Logger: log, BodyLimit: cfg.Server.BodyLimit, Ready: st})
	srv.Registry.MustRegister(&callsByState{store: st})
	apiOpts := api.Options{
		Service: svc, PublicURL: publicURL, Links: links, Pages: pages,
		ProviderKinds: providers.kinds, Logger: log, REST: cfg.API.IsEnabled(),
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
	if _, err := api.Register(srv.Echo, apiOpts); err != nil {
		return err
	}
	if err := webhooks.RegisterProviders(srv.Echo, webhooks.ProviderOptions{
		Parsers: providers.parsers, Applier: svc, PublicURL: publicURL, Logger: log, Registry: srv.Registry,
	}); err != nil {
		return err
	}

	httpSrv := &http.Server{
		Handler:           srv.Echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	var wg sync.WaitGroup
	timersCtx, stopTimers := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(1)
	go func() {
		defer wg.Done()
		svc.RunTimers(timersCtx, time.Second)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	log.Info("callgate listening",
		"addr", ln.Addr().String(), "public_url", publicURL, "store", cfg.Store.Kind, "data_dir", dataDir,
		"providers", providers.describe(), "default_provider", cfg.DefaultProvider,
		"rest_api", cfg.API.IsEnabled(), "version", buildVersion())
	if listening != nil {
		listening(ln.Addr().String())
	}

	select {
	case err := <-serveErr:
		stopTimers()
		wg.Wait()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests", "timeout", cfg.Server.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout)
	defer cancel()
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

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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

// configuredProviders are the adapters built from the YAML.
type configuredProviders struct {
	byName  map[string]calls.Provider
	parsers map[string]webhooks.StatusParser
	kinds   map[string]string
}

func (p configuredProviders) describe() string {
	var parts []string
	for _, name := range sortedKeys(p.kinds) {
		parts = append(parts, name+"("+p.kinds[name]+")")
	}
	return strings.Join(parts, ",")
}

func buildProviders(cfg *config.Config) (configuredProviders, error) {
	out := configuredProviders{byName: map[string]calls.Provider{}, parsers: map[string]webhooks.StatusParser{}, kinds: map[string]string{}}
	for _, name := range sortedKeys(cfg.Providers) {
		pc := cfg.Providers[name]
		switch pc.Kind {
		case "jitsi":
			var secrets []string
			for _, s := range []string{pc.WebhookSecret, pc.PreviousWebhookSecret} {
				if s != "" {
					secrets = append(secrets, s)
				}
			}
			p, err := jitsi.New(jitsi.Config{BaseURL: pc.APIURL, AppID: pc.AppID, AppSecret: pc.AppSecret,
				Audience: pc.Audience, Subject: pc.Subject, WebhookSecrets: secrets})
			if err != nil {
				return out, fmt.Errorf("provider %s: %w", name, err)
			}
			out.byName[name] = p
			if len(secrets) > 0 {
				out.parsers[name] = p
			}
		default:
			return out, fmt.Errorf("provider %s: kind %q is not supported", name, pc.Kind)
		}
		out.kinds[name] = pc.Kind
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// callsByState reports the number of calls per state at scrape time, from
// the store, so every replica reports the same truth.
type callsByState struct{ store calls.Store }

var callsDesc = prometheus.NewDesc("callgate_calls", "Calls by state.", []string{"state"}, nil)

func (c *callsByState) Describe(ch chan<- *prometheus.Desc) { ch <- callsDesc }

func (c *callsByState) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.store.CountByState(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(callsDesc, err)
		return
	}
	for _, s := range calls.States {
		ch <- prometheus.MustNewConstMetric(callsDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
