package discord

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
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// Message is the body of the card's channel message, posted and edited.
// Components is always sent ([] on a final card), so an edit removes the
// buttons; AllowedMentions always parses nothing.
type Message struct {
	Embeds          []*discordgo.MessageEmbed        `json:"embeds"`
	Components      []discordgo.MessageComponent     `json:"components"`
	AllowedMentions discordgo.MessageAllowedMentions `json:"allowed_mentions"`
}

// Embed colours per state.
const (
	ColorStarting = 0x5865F2 // created, ringing, accepted: blurple
	ColorLive     = 0x57F287 // active: green
	ColorEnded    = 0x95A5A6 // ended: grey
	ColorFailed   = 0xED4245 // rejected, missed, failed: red
)

// Discord's bounds on an embed.
const (
	maxEmbedTitle       = 256
	maxEmbedDescription = 4096
	maxFieldValue       = 1024
)

// personalLabel labels the button that answers with a person's own link
// (the templates have no key for it yet).
var personalLabel = map[string]string{
	"en": "My link", "fr": "Mon lien", "de": "Mein Link", "es": "Mi enlace",
}

// Card renders the channel message of a delivery in the chat's default
// locale. Every user-provided value (title, names) is escaped.
func (a *App) Card(d calls.CardDelivery) Message {
	c := d.Call
	safe := c
	safe.Title = Escape(c.Title)
	names := map[string]string{c.CreatedBy: a.displayID(c.CreatedBy)}
	safe.Participants = append([]calls.Participant(nil), c.Participants...)
	for i, p := range safe.Participants {
		n := Escape(cleanName(p.Name))
		if n == "" {
			n = a.displayID(p.Identity)
		}
		names[p.Identity] = n
		safe.Participants[i].Name = n
	}
	card := a.tpl.Card(templates.CardInput{Call: safe, Names: names, JoinURL: d.JoinURL, Lang: a.lang, Now: a.now(), Recordings: c.Recordings})

	icon := "🎥 "
	if c.Type == calls.TypeAudio {
		icon = "📞 "
	}
	var lines []string
	if card.Live {
		lines = append(lines, "**"+card.StateText+"**")
		if card.Subtitle != "" {
			lines = append(lines, card.Subtitle)
		}
		lines = append(lines, card.PeopleText)
		if card.DurationText != "" {
			lines = append(lines, "⏱ "+card.DurationText)
		}
	} else {
		lines = append(lines, "**"+card.Summary+"**")
		if card.Subtitle != "" {
			lines = append(lines, card.Subtitle)
		}
	}
	embed := &discordgo.MessageEmbed{
		Title:       truncateEscaped(icon+card.Title, maxEmbedTitle),
		Description: truncateEscaped(strings.Join(lines, "\n"), maxEmbedDescription),
		Color:       stateColor(c.State),
	}
	if !c.CreatedAt.IsZero() {
		embed.Timestamp = c.CreatedAt.UTC().Format(time.RFC3339)
	}
	for _, r := range card.Recordings {
		if link := safeURL(r.URL); link != "" {
			embed.Fields = append(embed.Fields, &discordgo.MessageEmbedField{
				Name: r.Label, Value: truncate("["+r.Label+"]("+link+")", maxFieldValue), Inline: true,
			})
		}
	}
	msg := Message{
		Embeds:          []*discordgo.MessageEmbed{embed},
		Components:      []discordgo.MessageComponent{},
		AllowedMentions: *noMentions(),
	}
	var buttons []discordgo.MessageComponent
	for _, act := range card.Actions {
		switch act.ID {
		case "join":
			if link := safeURL(act.URL); link != "" {
				buttons = append(buttons, discordgo.Button{Label: act.Label, Style: discordgo.LinkButton, URL: link})
			}
			buttons = append(buttons, discordgo.Button{Label: personalLabel[card.Lang], Style: discordgo.SecondaryButton, CustomID: CustomID("join", c.ID)})
		case "end", "decline":
			buttons = append(buttons, discordgo.Button{Label: act.Label, Style: discordgo.DangerButton, CustomID: CustomID(act.ID, c.ID)})
		case "accept":
			buttons = append(buttons, discordgo.Button{Label: act.Label, Style: discordgo.SuccessButton, CustomID: CustomID(act.ID, c.ID)})
		}
	}
	if len(buttons) > 0 {
		msg.Components = []discordgo.MessageComponent{discordgo.ActionsRow{Components: buttons}}
	}
	return msg
}

// displayID shows a gateway user id: a Discord user of this chat as a
// mention (<@id> renders their name and, with allowed_mentions empty and
// inside an embed, never pings), anyone else escaped.
func (a *App) displayID(id string) string {
	if rest, ok := strings.CutPrefix(id, a.name+":"); ok && isSnowflake(rest) {
		return "<@" + rest + ">"
	}
	return Escape(id)
}

func stateColor(s calls.State) int {
	switch s {
	case calls.StateActive:
		return ColorLive
	case calls.StateEnded:
		return ColorEnded
	case calls.StateRejected, calls.StateMissed, calls.StateFailed:
		return ColorFailed
	}
	return ColorStarting
}

// safeURL keeps http(s) URLs only, with the characters that would end a
// markdown link escaped; "" for anything else.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return strings.NewReplacer("(", "%28", ")", "%29", " ", "%20", "<", "%3C", ">", "%3E").Replace(u.String())
}

// PostCard posts the card as the bot's message in the surface's channel
// (POST /channels/{channel}/messages) when there is none yet, else edits
// it (PATCH /channels/{channel}/messages/{id}); it returns the message id.
// An edit of a message someone deleted posts a new one. A route whose
// bucket Discord said is empty is not called until it refills: the answer
// is calls.Temporary with the wait, as for a 429.
func (a *App) PostCard(ctx context.Context, d calls.CardDelivery) (string, error) {
	if user, ok := d.Surface.DirectUser(); ok {
		return a.postDirect(ctx, d, user)
	}
	channel := d.Surface.Channel
	if !isSnowflake(channel) {
		return "", calls.Permanentf("discord: %q is not a channel id", truncate(channel, 32))
	}
	body := jsonBody(a.Card(d))
	ref := d.Surface.Delivery.MessageRef
	if ref != "" && !isSnowflake(ref) {
		ref = "" // not a message id: post a fresh card
	}
	if ref != "" {
		id, err := a.send(ctx, http.MethodPatch, channel, ref, body)
		var gone *unknownMessage
		if !errors.As(err, &gone) {
			return id, err
		}
	}
	return a.send(ctx, http.MethodPost, channel, "", body)
}

// postDirect rings one person: their DM channel with the bot is opened
// (POST /users/@me/channels {recipient_id}, which returns the existing one
// when there is one), then the card is posted there and edited after like
// a channel's. The reference is "<dm channel>/<message>", so edits need no
// second lookup.
func (a *App) postDirect(ctx context.Context, d calls.CardDelivery, user string) (string, error) {
	if !isSnowflake(user) {
		return "", calls.Permanentf("discord: %q is not a user id", truncate(user, 32))
	}
	channel, message, _ := strings.Cut(d.Surface.Delivery.MessageRef, "/")
	if !isSnowflake(channel) {
		channel, message = "", ""
	}
	if channel == "" {
		id, err := a.openDM(ctx, user)
		if err != nil {
			return "", err
		}
		channel = id
	}
	body := jsonBody(a.Card(d))
	if isSnowflake(message) {
		id, err := a.send(ctx, http.MethodPatch, channel, message, body)
		var gone *unknownMessage
		if !errors.As(err, &gone) {
			if err != nil {
				return "", err
			}
			return channel + "/" + id, nil
		}
	}
	id, err := a.send(ctx, http.MethodPost, channel, "", body)
	if err != nil {
		return "", err
	}
	return channel + "/" + id, nil
}

// openDM returns the id of the bot's DM channel with a user.
func (a *App) openDM(ctx context.Context, user string) (string, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, a.api+"/users/@me/channels", jsonBody(map[string]string{"recipient_id": user}))
	if err != nil {
		return "", calls.Permanentf("discord: invalid api_url")
	}
	a.authorize(req)
	answer, _, err := httpx.Do(a.client, req, "discord: opening a DM")
	if err != nil {
		return "", err
	}
	var ch struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(answer, &ch) != nil || !isSnowflake(ch.ID) {
		return "", calls.Permanentf("discord: the DM channel answer holds no id")
	}
	return ch.ID, nil
}

// unknownMessage is an edit of a message that no longer exists (10008).
type unknownMessage struct{ error }

// apiError is Discord's JSON error body.
type apiError struct {
	Code       int     `json:"code"`
	Message    string  `json:"message"`
	RetryAfter float64 `json:"retry_after"`
	Global     bool    `json:"global"`
}

// Discord JSON error codes the card path acts on.
const (
	codeUnknownChannel     = 10003
	codeUnknownMessage     = 10008
	codeMissingAccess      = 50001
	codeCannotSendDM       = 50007
	codeMissingPermissions = 50013
)

func (a *App) send(ctx context.Context, method, channel, messageID string, body []byte) (string, error) {
	path := "/channels/" + channel + "/messages"
	route := method + " " + path
	what := "discord: posting the card in channel " + channel
	if messageID != "" {
		path += "/" + messageID
		what = "discord: editing the card in channel " + channel
	}
	if wait := a.limits.wait(route, a.now()); wait > 0 {
		return "", calls.Temporary(fmt.Errorf("%s: Discord's rate limit for this route is spent", what), wait)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, a.api+path, body)
	if err != nil {
		return "", calls.Permanentf("discord: invalid api_url")
	}
	a.authorize(req)
	resp, err := a.client.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", calls.Temporary(fmt.Errorf("%s at %s: %w", what, a.apiHost, err), 0)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	now := a.now()
	a.limits.observe(route, resp, now)
	var ae apiError
	_ = json.Unmarshal(answer, &ae)
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		var m struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(answer, &m) == nil && isSnowflake(m.ID) {
			return m.ID, nil
		}
		if messageID != "" {
			return messageID, nil
		}
		return "", calls.Permanentf("%s: Discord's answer holds no message id", what)
	case code == http.StatusTooManyRequests:
		wait := rateLimitWait(resp.Header, ae, now)
		global := ae.Global || resp.Header.Get("X-RateLimit-Global") == "true"
		a.limits.block(route, global, now, now.Add(wait))
		scope := "this route"
		if global {
			scope = "the bot (global limit)"
		}
		return "", calls.Temporary(fmt.Errorf("%s: rate limited on %s for %s", what, scope, wait), wait)
	case code == http.StatusNotFound && ae.Code == codeUnknownMessage && messageID != "":
		return "", &unknownMessage{fmt.Errorf("%s: the message is gone", what)}
	case code == http.StatusUnauthorized:
		return "", calls.Permanent(what+": Discord refused the bot token; check bot_token in the YAML (Developer Portal → Bot → Reset Token)", discordErr(code, ae))
	case code == http.StatusForbidden || ae.Code == codeMissingAccess || ae.Code == codeMissingPermissions:
		return "", calls.Permanent(what+": the bot cannot post here; invite it to the server with the View Channel, Send Messages and Embed Links permissions, and let it see this channel", discordErr(code, ae))
	case ae.Code == codeUnknownChannel || code == http.StatusNotFound:
		return "", calls.Permanent(what+": Discord does not know this channel (deleted, or the bot is not in its server)", discordErr(code, ae))
	case ae.Code == codeCannotSendDM:
		return "", calls.Permanent(what+": Discord does not let the bot message this person", discordErr(code, ae))
	case httpx.Retryable(code):
		return "", calls.Temporary(fmt.Errorf("%s at %s: HTTP %d%s", what, a.apiHost, code, httpx.Snippet(answer)), httpx.RetryAfter(resp.Header.Get("Retry-After"), now))
	}
	return "", calls.Permanent(fmt.Sprintf("%s: Discord refused the card (HTTP %d)", what, code), discordErr(code, ae))
}

func discordErr(code int, ae apiError) error {
	if ae.Code != 0 || ae.Message != "" {
		return fmt.Errorf("HTTP %d: code %d: %s", code, ae.Code, truncate(ae.Message, 200))
	}
	return fmt.Errorf("HTTP %d", code)
}

// authorize sets the bot's headers.
func (a *App) authorize(req *retryablehttp.Request) {
	req.Header.Set("Authorization", "Bot "+a.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "DiscordBot (https://github.com/callgate/callgate, 1)")
}

// rateLimitWait is how long a 429 asks to wait: the body's retry_after
// (float seconds), else X-RateLimit-Reset-After, else Retry-After; at
// least a second when none is readable, at most httpx.MaxRetryAfter.
func rateLimitWait(h http.Header, ae apiError, now time.Time) time.Duration {
	wait := seconds(ae.RetryAfter)
	if wait <= 0 {
		wait = headerSeconds(h, "X-RateLimit-Reset-After")
	}
	if wait <= 0 {
		wait = httpx.RetryAfter(h.Get("Retry-After"), now)
	}
	if wait <= 0 {
		wait = time.Second
	}
	return min(wait, httpx.MaxRetryAfter)
}

func seconds(f float64) time.Duration {
	if f <= 0 || f != f {
		return 0
	}
	if f > httpx.MaxRetryAfter.Seconds() {
		return httpx.MaxRetryAfter
	}
	// Round up to the millisecond: waking early earns another 429.
	return time.Duration(f*1000+0.999) * time.Millisecond
}

func headerSeconds(h http.Header, name string) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(h.Get(name)), 64)
	if err != nil {
		return 0
	}
	return seconds(f)
}

// bucketTracker remembers, per route (method and path with the channel,
// Discord's major parameter), until when Discord said its bucket is empty,
// and until when the global limit holds.
type bucketTracker struct {
	mu     sync.Mutex
	routes map[string]time.Time
	global time.Time
}

// maxTrackedRoutes bounds the tracker; expired entries are dropped first.
const maxTrackedRoutes = 10_000

func newBucketTracker() *bucketTracker { return &bucketTracker{routes: map[string]time.Time{}} }

// wait is how long a request on route must wait now; 0 when it may go.
func (b *bucketTracker) wait(route string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	until := b.routes[route]
	if b.global.After(until) {
		until = b.global
	}
	if d := until.Sub(now); d > 0 {
		return d
	}
	delete(b.routes, route)
	return 0
}

// observe records an answer's X-RateLimit-Remaining and
// X-RateLimit-Reset-After: an empty bucket blocks the route until reset.
func (b *bucketTracker) observe(route string, resp *http.Response, now time.Time) {
	if strings.TrimSpace(resp.Header.Get("X-RateLimit-Remaining")) != "0" || resp.StatusCode == http.StatusTooManyRequests {
		return
	}
	if d := headerSeconds(resp.Header, "X-RateLimit-Reset-After"); d > 0 {
		b.block(route, false, now, now.Add(d))
	}
}

func (b *bucketTracker) block(route string, global bool, now, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if global {
		if until.After(b.global) {
			b.global = until
		}
		return
	}
	if len(b.routes) >= maxTrackedRoutes {
		for k, t := range b.routes {
			if !t.After(now) {
				delete(b.routes, k)
			}
		}
		if len(b.routes) >= maxTrackedRoutes {
			b.routes = map[string]time.Time{}
		}
	}
	if until.After(b.routes[route]) {
		b.routes[route] = until
	}
}

// jsonBody encodes v compactly, leaving <, > and & as they are (Discord
// reads both forms; this one is what a person reading a log expects).
func jsonBody(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(buf.Bytes(), "\n")
}
