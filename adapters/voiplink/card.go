package voiplink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/calls"
)

// MIME types of message parts.
const (
	MIMEText     = "text/plain"
	MIMEVoIPLink = "application/voip-link"
)

// Part is one message part, as in Layer's messages: a MIME type and a body.
// An application/voip-link part's body is the call's join link.
type Part struct {
	MIMEType string `json:"mime_type"`
	Body     string `json:"body"`
}

// Message is the answer to a command: the message to show in the
// conversation. Call, Version and PersonalURL are set when the command
// started, found or ended a call. PersonalURL is a link signed for the
// person who typed the command: show it to them only, never in the
// conversation.
type Message struct {
	Parts       []Part    `json:"parts"`
	Call        *CallView `json:"call,omitempty"`
	Version     int64     `json:"version,omitempty"`
	PersonalURL string    `json:"personal_url,omitempty"`
}

// Callback is the body PostCard sends to the callback URL.
type Callback struct {
	// DeliveryID is the same on every retry of one delivery and differs
	// for each new version: dedupe by it.
	DeliveryID     string `json:"delivery_id"`
	ConversationID string `json:"conversation_id"`
	// MessageID is what the app answered to an earlier callback of this
	// call in this conversation (its "message_id"), absent before: the
	// message to update.
	MessageID string `json:"message_id,omitempty"`
	// Version grows with every change of the call: drop a callback whose
	// version is not above the one already shown.
	Version int64    `json:"version"`
	Parts   []Part   `json:"parts"`
	Call    CallView `json:"call"`
}

// CallView is a call as the app sees it.
type CallView struct {
	ID           string            `json:"id"`
	Type         string            `json:"type"`  // "video" or "audio"
	State        string            `json:"state"` // created, ringing, accepted, active; terminal: rejected, missed, ended, failed
	Title        string            `json:"title"`
	Provider     string            `json:"provider"`
	CreatedBy    string            `json:"created_by"`
	Members      []MemberView      `json:"members"`
	Participants []ParticipantView `json:"participants"`
	EndedAt      *time.Time        `json:"ended_at,omitempty"`
	EndReason    string            `json:"end_reason,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
}

// MemberView is a person invited to or owning the call.
type MemberView struct {
	UserID string `json:"user_id"`
	Role   string `json:"role"`
}

// ParticipantView is a person in the call now.
type ParticipantView struct {
	Identity string    `json:"identity"`
	Name     string    `json:"name"`
	JoinedAt time.Time `json:"joined_at"`
}

func newCallView(c calls.Call) *CallView {
	v := &CallView{
		ID:           c.ID,
		Type:         string(c.Type),
		State:        string(c.State),
		Title:        c.Title,
		Provider:     c.Provider,
		CreatedBy:    c.CreatedBy,
		Members:      make([]MemberView, 0, len(c.Members)),
		Participants: make([]ParticipantView, 0, len(c.Participants)),
		EndReason:    c.EndReason,
		CreatedAt:    c.CreatedAt.UTC(),
		UpdatedAt:    c.UpdatedAt.UTC(),
	}
	for _, m := range c.Members {
		v.Members = append(v.Members, MemberView{UserID: m.UserID, Role: string(m.Role)})
	}
	for _, p := range c.Participants {
		v.Participants = append(v.Participants, ParticipantView{Identity: p.Identity, Name: p.Name, JoinedAt: p.JoinedAt.UTC()})
	}
	if c.EndedAt != nil {
		t := c.EndedAt.UTC()
		v.EndedAt = &t
	}
	return v
}

// NewCallback builds the callback body of a delivery.
func NewCallback(d calls.CardDelivery) Callback {
	return Callback{
		DeliveryID:     d.DeliveryID,
		ConversationID: d.Surface.Channel,
		MessageID:      d.Surface.Delivery.MessageRef,
		Version:        d.Version,
		Parts:          []Part{{MIMEType: MIMEVoIPLink, Body: d.JoinURL}},
		Call:           *newCallView(d.Call),
	}
}

// maxResponseBytes bounds what is read of the app's answer.
const maxResponseBytes = 64 << 10

// maxRetryAfter bounds what an app can ask the outbox to wait.
const maxRetryAfter = 24 * time.Hour

// PostCard POSTs the call to the callback URL, signed with the current
// secret. It returns the app's "message_id" when the 2xx answer is a JSON
// object holding one, else the message reference kept from before (empty
// until the app gives one: the app keys its message by conversation and
// call id then). 429, 408, 5xx, network errors and timeouts are
// calls.TemporaryError (with the app's Retry-After); any other answer is a
// calls.PermanentError naming the host.
func (a *App) PostCard(ctx context.Context, d calls.CardDelivery) (string, error) {
	if _, direct := d.Surface.DirectUser(); direct {
		// A "dm:" surface rings one person by direct message: not
		// applicable here (the voip-link app rings its users itself from the call members it receives on the channel card), so there is nothing to deliver.
		return "", nil
	}
	body, err := json.Marshal(NewCallback(d))
	if err != nil {
		return "", calls.Permanent("cannot encode the card", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, a.callback, body)
	if err != nil {
		return "", calls.Permanentf("invalid callback_url for the app at %s", a.host)
	}
	now := a.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "callgate-voiplink")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(a.secrets[0], now, body))
	req.Header.Set(HeaderDelivery, d.DeliveryID)
	req.Header.Set(HeaderVersion, strconv.FormatInt(d.Version, 10))

	resp, err := a.client.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return "", calls.Temporary(a.transportError(err), 0)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		if id := messageID(answer); id != "" {
			return id, nil
		}
		return d.Surface.Delivery.MessageRef, nil
	case code == http.StatusTooManyRequests:
		return "", calls.Temporary(fmt.Errorf("the app at %s is rate limiting cards (HTTP %d)", a.host, code), a.retryAfter(resp.Header.Get("Retry-After")))
	case code == http.StatusRequestTimeout || code >= 500:
		return "", calls.Temporary(fmt.Errorf("the app at %s failed (HTTP %d)%s", a.host, code, snippet(answer)), a.retryAfter(resp.Header.Get("Retry-After")))
	case code >= 300 && code < 400:
		return "", calls.Permanentf("the app at %s answered with a redirect (HTTP %d): set callback_url to the final address", a.host, code)
	}
	var remote error
	if s := snippet(answer); s != "" {
		remote = errors.New(strings.TrimPrefix(s, ": "))
	}
	return "", calls.Permanent(fmt.Sprintf("the app at %s refused the card (HTTP %d)", a.host, code), remote)
}

// transportError says what went wrong without the URL, whose path or query
// may hold a token: *url.Error's message repeats it.
func (a *App) transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("posting the card to the app at %s: %w", a.host, err)
}

// retryAfter parses Retry-After: delay seconds or an HTTP date; zero when
// absent or unreadable.
func (a *App) retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(a.now()), 0), maxRetryAfter)
}

// messageID reads {"message_id": "…"} from a 2xx answer; anything else
// (no body, not JSON, an unusable id) gives "".
func messageID(answer []byte) string {
	var v struct {
		MessageID any `json:"message_id"`
	}
	dec := json.NewDecoder(bytes.NewReader(answer))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return ""
	}
	var id string
	switch x := v.MessageID.(type) {
	case string:
		id = x
	case json.Number:
		id = x.String()
	}
	if checkID("message_id", id, false) != nil {
		return ""
	}
	return id
}

// snippet is the start of the app's answer, for logs: one line, printable.
func snippet(answer []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(answer), "?"))
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	return ": " + truncate(s, 200)
}
