package webhooks

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// refusalLogEvery is how often one kind of refusal (a source, its name and
// the outcome) is logged at most.
const refusalLogEvery = time.Second

// refusalLog writes the warning for a refused request at most once per
// refusalLogEvery for each (source, name, outcome). A flood of forged or
// replayed requests arrives at wire speed, and a warning is written at
// once (a system call per line, where information lines are batched): one
// line per refusal would cost the gateway a third of its time on the
// refusal path and bury the first, informative line under identical ones.
// The next line logged for a key carries how many were left out since the
// last one ("suppressed"); the outcome metrics count every refusal.
type refusalLog struct {
	logger *slog.Logger
	now    func() time.Time
	mu     sync.Mutex
	// keys holds one entry per source, configured name and outcome (all
	// from bounded sets: a name is looked up among the configured ones
	// before anything is refused), so it cannot grow with the requests.
	keys map[refusalKey]*refusalCount
}

type refusalKey struct{ source, name, outcome string }

type refusalCount struct {
	logged time.Time // when the last line for the key was written
	left   int       // refusals since then that were not logged
}

func newRefusalLog(logger *slog.Logger, now func() time.Time) *refusalLog {
	if now == nil {
		now = time.Now
	}
	return &refusalLog{logger: logger, now: now, keys: map[refusalKey]*refusalCount{}}
}

// warn logs msg with args for a refusal of key, unless a line for key went
// out less than refusalLogEvery ago.
func (r *refusalLog) warn(ctx context.Context, key refusalKey, msg string, args ...any) {
	now := r.now()
	r.mu.Lock()
	c, seen := r.keys[key]
	if seen && now.Sub(c.logged) < refusalLogEvery {
		c.left++
		r.mu.Unlock()
		return
	}
	left := 0
	if seen {
		left = c.left
		c.logged, c.left = now, 0
	} else {
		r.keys[key] = &refusalCount{logged: now}
	}
	r.mu.Unlock()
	if left > 0 {
		args = append(args, "suppressed", left)
	}
	r.logger.WarnContext(ctx, msg, args...)
}
