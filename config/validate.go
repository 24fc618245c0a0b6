package config

import (
	"fmt"
	"net"
	"net/url"
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

func (v *validator) validate(c *Config) {
	v.server(&c.Server)
	v.store(&c.Store)
	v.api(&c.API)
	v.providers(c)
	v.calls(&c.Calls)
	for _, name := range sortedKeys(c.Chats) {
		f := join("chats", name)
		ch := c.Chats[name]
		if k, ok := chatKinds[ch.Kind]; ok && !v.d.skip[f] && k.validate != nil {
			k.validate(v, f, &ch)
		}
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
		if v.d.skip[f] {
			continue
		}
		p := c.Providers[name]
		kind, ok := providerKinds[p.Kind]
		if !ok {
			continue
		}
		if p.APIURL != "" {
			v.httpURL(f+".api_url", p.APIURL)
		}
		if kind.validate != nil {
			kind.validate(v, f, &p)
		}
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
