package httpserver

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// RateLimit configures a per-client budget: Burst attempts at once, refilled
// at Rate per second. The zero value is enabled with the defaults of the
// limiter it configures.
type RateLimit struct {
	// Disabled turns the limit off (YAML would say enabled: false).
	Disabled bool
	// Rate is how many attempts per second refill the budget.
	Rate float64
	// Burst is the budget of a client that has not failed for a while.
	Burst int
	// MaxClients bounds memory: the number of client addresses tracked at
	// once, default 100,000 (about 10 MB).
	MaxClients int
}

// withDefaults fills zero fields from def.
func (r RateLimit) withDefaults(def RateLimit) RateLimit {
	if r.Rate <= 0 {
		r.Rate = def.Rate
	}
	if r.Burst <= 0 {
		r.Burst = def.Burst
	}
	if r.MaxClients <= 0 {
		r.MaxClients = 100_000
	}
	return r
}

// Limiter keeps one token bucket per client address. Only what the caller
// charges with Charge consumes the budget; Blocked only looks. Buckets that
// have been idle long enough to be full again are forgotten (a new one
// would be the same), so memory follows the clients failing right now, and
// never exceeds MaxClients buckets.
type Limiter struct {
	cfg RateLimit
	now func() time.Time
	// idle is how long a bucket takes to refill completely: after that it
	// holds nothing worth keeping.
	idle time.Duration

	mu        sync.Mutex
	clients   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// NewLimiter returns a limiter; def supplies the defaults for cfg's zero
// fields. now may be nil (time.Now).
func NewLimiter(cfg, def RateLimit, now func() time.Time) *Limiter {
	cfg = cfg.withDefaults(def)
	if now == nil {
		now = time.Now
	}
	idle := time.Duration(float64(cfg.Burst) / cfg.Rate * float64(time.Second))
	return &Limiter{cfg: cfg, now: now, idle: max(idle, time.Second), clients: map[string]*bucket{}}
}

// Blocked reports whether client has no budget left, and when to retry.
// It consumes nothing.
func (l *Limiter) Blocked(client string) (time.Duration, bool) {
	if l == nil || l.cfg.Disabled {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.clients[client]
	if !ok {
		return 0, false
	}
	if tokens := b.lim.TokensAt(now); tokens < 1 {
		return l.wait(tokens), true
	}
	return 0, false
}

// Charge consumes one attempt of client's budget. It reports false, and
// when to retry, if there was none left.
func (l *Limiter) Charge(client string) (time.Duration, bool) {
	if l == nil || l.cfg.Disabled {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	b, ok := l.clients[client]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.cfg.Rate), l.cfg.Burst)}
		l.clients[client] = b
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return 0, true
	}
	return l.wait(b.lim.TokensAt(now)), false
}

// wait is how long until a bucket holding tokens has one.
func (l *Limiter) wait(tokens float64) time.Duration {
	return time.Duration((1 - tokens) / l.cfg.Rate * float64(time.Second))
}

// sweep forgets idle buckets, at most once per idle period, and makes room
// for one more when the map is full. Called with l.mu held.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) >= l.idle || len(l.clients) >= l.cfg.MaxClients {
		l.lastSweep = now
		for k, b := range l.clients {
			if now.Sub(b.last) >= l.idle {
				delete(l.clients, k)
			}
		}
	}
	// Still full of busy clients: forget an arbitrary one (Go's map order is
	// random), so an attacker with many addresses cannot grow the map.
	for k := range l.clients {
		if len(l.clients) < l.cfg.MaxClients {
			break
		}
		delete(l.clients, k)
	}
}

// Len is the number of client addresses tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// RetryAfter sets the Retry-After header: whole seconds, at least 1.
func RetryAfter(c echo.Context, wait time.Duration) {
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(max(1, math.Ceil(wait.Seconds())))))
}

// RateLimited is the 429 error.
func RateLimited(c echo.Context, wait time.Duration, what string) *Error {
	RetryAfter(c, wait)
	return NewError(http.StatusTooManyRequests, "rate_limited", "too many %s from your address; retry after %s", what, c.Response().Header().Get("Retry-After")+"s")
}

// ClientKey is the rate-limit key of a request: its client address as the
// server's IP extractor sees it (the TCP peer unless trusted proxies are
// configured). An IPv6 client is keyed by its /64, the block one host
// usually owns.
func ClientKey(c echo.Context) string {
	ip := c.RealIP()
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// ipExtractor trusts X-Forwarded-For only from the given proxies; without
// any it uses the TCP peer.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		p = p.Masked()
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
