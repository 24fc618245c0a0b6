package ws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/callgate/callgate/adapters/voiplink"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store"
)

// Outbound requests (the push hook, the call event webhooks) are rows in
// the store until their receiver answers 2xx: a receiver that is down, or
// a gateway that restarts meanwhile, delays them but does not lose them.
// Each replica's worker leases due rows, posts them signed, and deletes
// them or schedules the next attempt (exponential backoff with jitter, or
// the receiver's Retry-After); after HookAttempts failures a delivery is
// dead: logged as an error, counted, and kept a day. Every attempt carries
// the same X-Callgate-Delivery id, so a receiver that got a request whose
// answer was lost can tell the retry is one it already has.

const (
	// deliveryBatch bounds the deliveries one claim leases; they are sent
	// concurrently.
	deliveryBatch = 16
	// maxRetryAfter bounds how long a receiver's Retry-After may park a
	// delivery.
	maxRetryAfter = time.Hour
)

func (h *Hub) deliveryDefaults() {
	if h.o.HookAttempts <= 0 {
		h.o.HookAttempts = 10
	}
	if h.o.HookBackoff <= 0 {
		h.o.HookBackoff = 2 * time.Second
	}
	if h.o.HookMaxBackoff <= 0 {
		h.o.HookMaxBackoff = 10 * time.Minute
	}
	if h.o.HookLease <= 0 {
		h.o.HookLease = time.Minute
	}
}

// kickDeliveries wakes this replica's worker: something is due now.
func (h *Hub) kickDeliveries() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *Hub) deliveryLoop() {
	t := time.NewTicker(h.o.Poll)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.kick:
		case <-t.C:
		}
		for h.ctx.Err() == nil {
			ds, err := h.o.Store.ClaimWSDeliveries(h.ctx, h.o.Replica, h.now(), h.o.HookLease, deliveryBatch)
			if err != nil {
				if h.ctx.Err() == nil {
					h.log.Warn("ws: claiming outbound deliveries failed", "err", err)
				}
				break
			}
			var wg sync.WaitGroup
			for _, d := range ds {
				wg.Add(1)
				go func() { defer wg.Done(); h.attempt(d) }()
			}
			wg.Wait()
			if len(ds) < deliveryBatch {
				break
			}
		}
	}
}

// secretFor returns the signing secret configured for url.
func (h *Hub) secretFor(u string) (string, bool) {
	if h.o.PushURL != "" && u == h.o.PushURL {
		return h.o.PushSecret, true
	}
	for _, w := range h.o.Webhooks {
		if w.URL == u {
			return w.Secret, true
		}
	}
	return "", false
}

// attempt sends one claimed delivery and records the outcome.
func (h *Hub) attempt(d store.WSDelivery) {
	out := store.WSDeliveryOutcome{ID: d.ID, URL: d.URL, Owner: d.Owner}
	var retryAfter time.Duration
	err := errors.New("the URL is no longer configured")
	secret, ok := h.secretFor(d.URL)
	// A push that comes after its ring is over would wake a phone for
	// nothing: it is dropped unsent.
	out.Expired = !d.ExpiresAt.IsZero() && !h.now().Before(d.ExpiresAt)
	if ok && !out.Expired {
		retryAfter, err = h.send(d, secret)
	}
	now := h.now()
	attempts := d.Attempts + 1
	var wait time.Duration
	switch {
	case out.Expired:
	case err == nil:
		out.Delivered = true
	default:
		out.LastError, out.At = err.Error(), now
		out.Dead = !ok || attempts >= h.o.HookAttempts
		wait = h.backoff(attempts)
		if retryAfter > wait {
			wait = min(retryAfter, maxRetryAfter)
		}
		out.NextAttemptAt = now.Add(wait)
	}
	// The outcome is recorded even when the hub is stopping: a lease left
	// behind would hold the delivery back until it ran out.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 5*time.Second)
	defer cancel()
	if ferr := h.o.Store.FinishWSDelivery(ctx, out); ferr != nil {
		if errors.Is(ferr, calls.ErrLeaseLost) {
			h.log.Info("ws: outbound delivery taken over by another replica", "id", d.ID)
			return
		}
		h.log.Warn("ws: recording an outbound delivery failed", "id", d.ID, "err", ferr)
	}
	switch {
	case out.Expired:
		h.HooksExpired.Add(1)
		h.log.Info("ws: outbound delivery expired unsent", "id", d.ID, "attempts", d.Attempts)
	case out.Delivered:
		h.HooksDelivered.Add(1)
	case out.Dead:
		h.HooksDead.Add(1)
		h.log.Error("ws: outbound delivery given up", "id", d.ID, "attempts", attempts, "err", err)
	default:
		h.HooksRetried.Add(1)
		h.log.Warn("ws: outbound delivery failed; will retry", "id", d.ID, "attempt", attempts, "retry_in", wait.Round(time.Millisecond), "err", err)
	}
}

// backoff is the wait before attempt n+1: HookBackoff doubled per failed
// attempt up to HookMaxBackoff, with jitter in its upper half so the
// deliveries that failed together do not come back together.
func (h *Hub) backoff(failed int) time.Duration {
	d := h.o.HookBackoff
	for i := 1; i < failed && d < h.o.HookMaxBackoff; i++ {
		d *= 2
	}
	d = min(d, h.o.HookMaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// send posts the delivery signed with secret. A failure returns how long
// the receiver asked to wait (Retry-After), if it did.
func (h *Hub) send(d store.WSDelivery, secret string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, errors.New("bad URL")
	}
	now := h.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(voiplink.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(voiplink.HeaderSignature, voiplink.Sign([]byte(secret), now, d.Body))
	req.Header.Set(voiplink.HeaderDelivery, d.ID)
	resp, err := h.o.HTTPClient.Do(req)
	if err != nil {
		// The URL (which may carry a token) stays out of logs and rows.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode < 300 {
		return 0, nil
	}
	return retryAfter(resp.Header.Get("Retry-After"), now), fmt.Errorf("status %d", resp.StatusCode)
}

// retryAfter reads a Retry-After value: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// newDelivery is a delivery due now, worth sending until expires (zero:
// for ever).
func (h *Hub) newDelivery(id, u string, body []byte, expires time.Time) store.WSDelivery {
	now := h.now()
	return store.WSDelivery{ID: id, URL: u, Body: body, CreatedAt: now, NextAttemptAt: now, ExpiresAt: expires}
}
