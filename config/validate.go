package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// validator checks a decoded configuration, reporting through the decoder
// so that problems carry the line each setting was written on.
type validator struct {
	d *decoder
}

// problem reports msg about field, at the line where field was written, or
// else where the first of near was, or else its nearest written parent.
func (v *validator) problem(field, msg string, near ...string) {
	if v.d.bad[field] {
		return
	}
	v.d.add(v.line(field, near...), field, msg)
}

func (v *validator) line(field string, near ...string) int {
	for _, f := range append([]string{field}, near...) {
		if p, ok := v.d.pos[f]; ok {
			return p.line
		}
	}
	for f := field; ; {
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			return 0
		}
		f = f[:i]
		if p, ok := v.d.pos[f]; ok {
			return p.line
		}
	}
}

func (v *validator) show(field, value string) string { return v.d.show(field, value) }

// validHeaderName reports whether h is an HTTP header name (a token).
func validHeaderName(h string) bool {
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return h != ""
}

func (v *validator) validate(c *Config) {
	v.server(&c.Server)
	v.store(&c.Store)
	v.api(&c.API)
	v.providers(c)
	v.calls(&c.Calls)
	v.rooms(&c.Rooms)
	v.delivery(&c.Delivery)
	v.retention(&c.Retention)
	v.ws(&c.WS)
	if c.Admin.Token != "" && len(c.Admin.Token) < 16 {
		v.problem("admin.token", "must be at least 16 characters")
	}
	if h := c.Admin.SSOHeader; h != "" {
		if !validHeaderName(h) {
			v.problem("admin.sso_header", v.show("admin.sso_header", h)+" is not a header name such as X-Forwarded-User")
		}
		if len(c.Server.TrustedProxies) == 0 {
			v.problem("admin.sso_header", "needs server.trusted_proxies: the header is believed only from the proxy that sets it")
		}
	}
	for _, name := range sortedKeys(c.Chats) {
		f := join("chats", name)
		if !validName(name) {
			v.problem(f, "a chat name must use only a-z, 0-9, _ and -")
		}
		v.block(f, c.Chats[name])
	}
	v.oneOf("log.level", c.Log.Level, "a log level", "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "a log format", "text", "json")
}

func (v *validator) server(s *Server) {
	if s.Addr == "" {
		v.problem("server.addr", "required (host:port, such as :8080)")
	} else if _, port, err := net.SplitHostPort(s.Addr); err != nil || !validPort(port) {
		v.problem("server.addr", v.show("server.addr", s.Addr)+" is not a listen address host:port, such as :8080")
	}
	if s.PublicURL != "" {
		v.httpURL("server.public_url", s.PublicURL)
	}
	if s.BodyLimit < 1<<10 || s.BodyLimit > 64<<20 {
		v.problem("server.body_limit", "must be between 1024 (1 KiB) and 67108864 (64 MiB) bytes")
	}
	if s.ShutdownTimeout < 0 {
		v.problem("server.shutdown_timeout", "must not be negative")
	}
	for i, p := range s.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				v.problem(fmt.Sprintf("server.trusted_proxies[%d]", i), v.show(fmt.Sprintf("server.trusted_proxies[%d]", i), p)+" is not an address or CIDR such as 10.0.0.0/8")
			}
		}
	}
	v.between("server.max_header_bytes", s.MaxHeaderBytes, 4<<10, 1<<20)
	for field, d := range map[string]time.Duration{"server.read_header_timeout": s.ReadHeaderTimeout, "server.read_timeout": s.ReadTimeout,
		"server.write_timeout": s.WriteTimeout, "server.idle_timeout": s.IdleTimeout} {
		v.positive(field, d)
	}
	for field, r := range map[string]RateLimit{"server.rate_limits.auth_failures": s.RateLimits.AuthFailures, "server.rate_limits.join": s.RateLimits.Join} {
		if r.IsEnabled() && (r.Rate <= 0 || r.Burst < 1) {
			v.problem(field, "rate must be more than 0 and burst at least 1 (or enabled: false)")
		}
	}
	v.between("server.rate_limits.max_clients", s.RateLimits.MaxClients, 100, 10_000_000)
	v.rotation("server.link_secret", s.LinkSecret, "server.previous_link_secret", s.PreviousLinkSecret, 32)
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535 && !strings.HasPrefix(p, "+")
}

// httpURL checks an absolute http(s) URL without query or fragment. Its
// value is shown only when it cannot hold credentials.
func (v *validator) httpURL(field, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err == nil && u.User != nil:
		v.problem(field, "must not contain a user name or password")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" || u.Hostname() == "":
		if strings.Contains(raw, "@") {
			v.problem(field, "must be an absolute http:// or https:// URL")
		} else {
			v.problem(field, v.show(field, raw)+" is not an absolute http:// or https:// URL")
		}
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		v.problem(field, "must not have a query (?) or fragment (#)")
	}
}

func (v *validator) store(s *Store) {
	switch s.Kind {
	case "sqlite":
		if s.DSN != "" {
			v.problem("store.dsn", "only used when kind is postgres")
		}
	case "postgres":
		if s.Path != "" {
			v.problem("store.path", "only used when kind is sqlite")
		}
		switch {
		case s.DSN == "":
			v.problem("store.dsn", "required when kind is postgres", "store.kind")
		case !validDSN(s.DSN):
			v.problem("store.dsn", "must be a postgres:// or postgresql:// URL, or key=value settings")
		}
	default:
		v.problem("store.kind", v.show("store.kind", s.Kind)+" is not a store kind (use sqlite or postgres)")
	}
}

func validDSN(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		_, err := url.Parse(dsn)
		return err == nil
	}
	return !strings.Contains(dsn, "://") && strings.Contains(dsn, "=")
}

func (v *validator) api(a *API) {
	names := map[string]int{}
	keys := map[string]int{}
	for i, k := range a.Keys {
		f := fmt.Sprintf("api.keys[%d]", i)
		if k.Name == "" {
			v.problem(f+".name", "required")
		} else if j, dup := names[k.Name]; dup {
			v.problem(f+".name", fmt.Sprintf("%s is already the name of api.keys[%d]", v.show(f+".name", k.Name), j))
		} else {
			names[k.Name] = i
		}
		switch j, dup := keys[k.Key]; {
		case k.Key == "":
			v.problem(f+".key", "required")
		case dup:
			v.problem(f+".key", fmt.Sprintf("the same key as api.keys[%d] (keys must be unique)", j))
		case len(k.Key) < 16:
			v.problem(f+".key", "must be at least 16 characters")
		case strings.ContainsFunc(k.Key, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			v.problem(f+".key", "must not contain spaces or control characters")
		}
		if _, dup := keys[k.Key]; !dup && k.Key != "" {
			keys[k.Key] = i
		}
	}
	v.rotation("api.user_token_secret", a.UserTokenSecret, "api.previous_user_token_secret", a.PreviousUserTokenSecret, 32)
}

// rotation checks a secret and the previous one kept valid while rotating:
// the previous needs the current, and both need minLen bytes.
func (v *validator) rotation(curField, cur, prevField, prev string, minLen int) {
	if cur != "" && len(cur) < minLen {
		v.problem(curField, fmt.Sprintf("must be at least %d bytes", minLen))
	}
	switch {
	case prev != "" && cur == "":
		v.problem(prevField, "set only together with "+curField[strings.LastIndexByte(curField, '.')+1:]+", during a rotation")
	case prev != "" && len(prev) < minLen:
		v.problem(prevField, fmt.Sprintf("must be at least %d bytes", minLen))
	}
}

func (v *validator) providers(c *Config) {
	if len(c.Providers) == 0 {
		v.problem("providers", "at least one provider is required")
		return
	}
	names := sortedKeys(c.Providers)
	for _, name := range names {
		f := join("providers", name)
		if !validName(name) {
			v.problem(f, "a provider name must use only a-z, 0-9, _ and -")
		}
		v.block(f, c.Providers[name])
	}
	list := strings.Join(names, ", ")
	switch _, ok := c.Providers[c.DefaultProvider]; {
	case c.DefaultProvider == "" && len(names) > 1:
		v.problem("default_provider", "required when several providers are configured (one of: "+list+")", "providers")
	case c.DefaultProvider == "":
		v.problem("default_provider", "required (one of: "+list+")", "providers")
	case !ok:
		v.problem("default_provider", v.show("default_provider", c.DefaultProvider)+" is not a configured provider (configured: "+list+")", "providers")
	}
}

// block runs a decoded block's own validation (Validator), turning its
// relative fields into paths under field.
func (v *validator) block(field string, b Block) {
	if b.Settings == nil || v.d.skip[field] {
		return
	}
	val, ok := b.Settings.(Validator)
	if !ok {
		if _, has := reflect.TypeOf(b.Settings).MethodByName("Validate"); has {
			v.problem(field+".kind", fmt.Sprintf("internal error: %T has a Validate method that does not match config.Validator", b.Settings))
		}
		return
	}
	settings := reflect.ValueOf(b.Settings).Elem()
	under := func(rel string) string {
		switch {
		case rel == "":
			return field
		case rel[0] == '[':
			return field + rel
		}
		return field + "." + rel
	}
	val.Validate(func(rel, msg string, near ...string) {
		f := under(rel)
		if strings.Contains(msg, Value) {
			msg = strings.ReplaceAll(msg, Value, v.value(f, settings, rel))
		}
		nf := make([]string, len(near))
		for i, n := range near {
			nf[i] = under(n)
		}
		v.problem(f, v.d.hide(msg), nf...)
	})
}

// value is how a kind's message shows the value of field (rel within the
// settings struct s): as written or from the environment (see show), else
// the default's value, quoted; never a secret.
func (v *validator) value(field string, s reflect.Value, rel string) string {
	p, written := v.d.pos[field]
	if written && p.env != "" {
		return p.env
	}
	fv, secret, found := lookup(s, rel)
	switch {
	case secret || v.d.isSecret(field) || !found && !written:
		return "the value"
	case written && p.text != "":
		return strconv.Quote(p.text)
	case fv.Kind() == reflect.String:
		return strconv.Quote(fv.String())
	}
	return strconv.Quote(fmt.Sprint(fv.Interface()))
}

// lookup finds the value at a relative field path ("a.b[2].c") in v, and
// whether a field on the way is tagged secret.
func lookup(v reflect.Value, path string) (val reflect.Value, secret, ok bool) {
	for path != "" {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return v, secret, false
			}
			v = v.Elem()
		}
		if path[0] == '[' {
			end := strings.IndexByte(path, ']')
			i, err := strconv.Atoi(path[1:max(end, 1)])
			if end < 0 || err != nil || v.Kind() != reflect.Slice || i < 0 || i >= v.Len() {
				return v, secret, false
			}
			v, path = v.Index(i), path[end+1:]
			continue
		}
		path = strings.TrimPrefix(path, ".")
		name := path
		if i := strings.IndexAny(path, ".["); i >= 0 {
			name, path = path[:i], path[i:]
		} else {
			path = ""
		}
		switch v.Kind() {
		case reflect.Struct:
			_, index := structFields(v.Type())
			i, found := index[name]
			if !found {
				return v, secret, false
			}
			secret = secret || v.Type().Field(i).Tag.Get("secret") == "true"
			v = v.Field(i)
		case reflect.Map:
			if v.Type().Key().Kind() != reflect.String {
				return v, secret, false
			}
			e := v.MapIndex(reflect.ValueOf(name).Convert(v.Type().Key()))
			if !e.IsValid() {
				return v, secret, false
			}
			v = e
		default:
			return v, secret, false
		}
	}
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	return v, secret, v.IsValid()
}

func validName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (v *validator) calls(c *Calls) {
	if c.RingTimeout <= 0 {
		v.problem("calls.ring_timeout", "must be greater than 0")
	}
	if c.MaxDuration < 0 {
		v.problem("calls.max_duration", "must not be negative (0 means no limit)")
	}
	if c.TokenTTL < time.Minute || c.TokenTTL > 24*time.Hour {
		v.problem("calls.token_ttl", "must be between 1m and 24h")
	}
}

func (v *validator) oneOf(field, value, what string, allowed ...string) {
	if slices.Contains(allowed, value) {
		return
	}
	list := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	v.problem(field, v.show(field, value)+" is not "+what+" (use "+list+")")
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (v *validator) rooms(r *Rooms) {
	v.between("rooms.workers", r.Workers, 1, 64)
	v.backoff("rooms", r.MinBackoff, r.MaxBackoff, r.MaxAttempts)
	v.positive("rooms.attempt_timeout", r.AttemptTimeout)
	v.positive("rooms.deadline", r.Deadline)
	v.positive("rooms.wait", r.Wait)
	v.positive("rooms.poll", r.Poll)
	v.positive("rooms.reconcile_interval", r.ReconcileInterval)
	v.positive("rooms.reconcile_grace", r.ReconcileGrace)
	v.between("rooms.reconcile_batch", r.ReconcileBatch, 1, 1000)
	if r.Wait > 25*time.Second {
		v.problem("rooms.wait", "must be at most 25s: a request waiting longer than that is likely to time out anyway")
	}
}

func (v *validator) delivery(d *Delivery) {
	v.between("delivery.workers", d.Workers, 1, 64)
	v.backoff("delivery", d.MinBackoff, d.MaxBackoff, d.MaxAttempts)
	if d.Rate <= 0 || d.Rate > 1000 {
		v.problem("delivery.rate", "must be more than 0 and at most 1000 (card edits a second per destination)")
	}
	v.between("delivery.burst", d.Burst, 1, 1000)
	v.positive("delivery.timeout", d.Timeout)
	v.positive("delivery.poll", d.Poll)
	if d.Lease <= d.Timeout {
		v.problem("delivery.lease", "must be longer than delivery.timeout, or a slow delivery could be taken over while it still runs")
	}
}

func (v *validator) retention(r *Retention) {
	if r.EventsAfter < 0 {
		v.problem("retention.events_after", "must not be negative (0 keeps events forever)")
	}
	if r.MarksAfter < 0 || (r.MarksAfter > 0 && r.MarksAfter < time.Hour) {
		v.problem("retention.marks_after", "must be 0 (keep forever) or at least 1h: marks must outlast providers' retries, or a late redelivery is applied again")
	}
}

func (v *validator) backoff(section string, minB, maxB time.Duration, attempts int) {
	v.positive(section+".min_backoff", minB)
	if maxB < minB {
		v.problem(section+".max_backoff", "must not be shorter than "+section+".min_backoff")
	}
	v.between(section+".max_attempts", attempts, 1, 100)
}

func (v *validator) positive(field string, d time.Duration) {
	if d <= 0 {
		v.problem(field, "must be more than 0")
	}
}

func (v *validator) between(field string, n, lo, hi int) {
	if n < lo || n > hi {
		v.problem(field, fmt.Sprintf("must be between %d and %d", lo, hi))
	}
}

func (v *validator) ws(w *WS) {
	for i, o := range w.AllowedOrigins {
		if o == "" || strings.ContainsAny(o, "/ ") {
			v.problem(fmt.Sprintf("ws.allowed_origins[%d]", i), "must be a host pattern such as app.example.com, *.example.com or *")
		}
	}
	if w.Heartbeat < time.Second || w.Heartbeat > 5*time.Minute {
		v.problem("ws.heartbeat", "must be between 1s and 5m")
	}
	if w.MaxMessageBytes < 1024 || w.MaxMessageBytes > 16<<20 {
		v.problem("ws.max_message_bytes", "must be between 1024 and 16777216")
	}
	v.between("ws.send_queue", w.SendQueue, 8, 65536)
	if w.RingFresh < 0 {
		v.problem("ws.ring_fresh", "must not be negative")
	}
	if w.Push.URL != "" {
		v.httpURL("ws.push.url", w.Push.URL)
		if len(w.Push.Secret) < 16 {
			v.problem("ws.push.secret", "must be at least 16 characters when ws.push.url is set", "ws.push.url")
		}
	}
	v.backoff("ws.deliveries", w.Deliveries.MinBackoff, w.Deliveries.MaxBackoff, w.Deliveries.MaxAttempts)
	for i, h := range w.Webhooks {
		f := fmt.Sprintf("ws.webhooks[%d]", i)
		v.httpURL(f+".url", h.URL)
		if len(h.Secret) < 16 {
			v.problem(f+".secret", "must be at least 16 characters", f+".url")
		}
	}
}
