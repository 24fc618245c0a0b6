package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/callgate/callgate/calls"
)

// Endpoints under /webhooks/chats/<name>/.
const (
	PathCommands     = "commands"
	PathInteractions = "interactions"
	PathEvents       = "events"
	PathInstall      = "install"
	PathOAuth        = "oauth"
)

// maxIDLength bounds the Slack ids a request carries (team, channel, user).
const maxIDLength = 64

// Action ids of the card's buttons; the button's value is the call id.
const (
	ActionJoin    = "join"
	ActionEnd     = "end"
	ActionAccept  = "accept"
	ActionDecline = "decline"
	// actionPersonalLink is the link button of an ephemeral answer: its
	// click is acked and nothing else.
	actionPersonalLink = "personal_link"
)

// pending is what ParseChat leaves in ChatRequest.Private for ReplyChat.
type pending struct {
	endpoint    string // PathCommands or PathInteractions
	responseURL string
	locale      string
	// commandErr is why the text is not a command; nothing runs then.
	commandErr error
}

// ParseChat verifies and parses what Slack sends to one of the endpoints
// (path is what follows /webhooks/chats/<name>/).
func (a *App) ParseChat(ctx context.Context, path string, req calls.WebhookRequest) (calls.ChatRequest, error) {
	path = strings.Trim(path, "/")
	switch path {
	case PathInstall, PathOAuth:
		if req.Method != http.MethodGet {
			return calls.ChatRequest{}, malformed("%s answers GET only", path)
		}
		if path == PathInstall {
			return a.installPage(req)
		}
		return a.oauthCallback(ctx, req)
	case PathCommands, PathInteractions, PathEvents:
	default:
		return calls.ChatRequest{}, malformed("unknown endpoint %q (commands, interactions, events, install, oauth)", truncate(path, 64))
	}
	if req.Method != http.MethodPost {
		return calls.ChatRequest{}, malformed("%s answers POST only", path)
	}
	// Nothing in the body is looked at before it is authenticated.
	if err := Verify(req.Header, req.Body, a.now(), a.secrets...); err != nil {
		return calls.ChatRequest{}, err
	}
	if !utf8.Valid(req.Body) {
		return calls.ChatRequest{}, malformed("the body is not valid UTF-8")
	}
	// Slack never repeats a command or a click (events are retried, and
	// deduplicated by event id instead), so the same signature twice on
	// these is a replay.
	replayKey := req.Header.Get(HeaderSignature) + "|" + req.Header.Get(HeaderTimestamp)
	switch path {
	case PathCommands:
		out, err := a.parseCommand(req.Body)
		out.ReplayKey = replayKey
		return out, err
	case PathInteractions:
		out, err := a.parseInteraction(req.Body)
		out.ReplayKey = replayKey
		return out, err
	}
	return a.parseEvent(ctx, req)
}

// ack is the empty 200 Slack wants for what needs no answer.
var ack = &calls.WebhookReply{Status: http.StatusOK, ContentType: "text/plain; charset=utf-8"}

func (a *App) parseCommand(body []byte) (calls.ChatRequest, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return calls.ChatRequest{}, malformed("the slash command is not a valid form")
	}
	get := func(k string) (string, error) {
		v := form[k]
		if len(v) > 1 {
			return "", malformed("more than one %s", k)
		}
		if len(v) == 0 {
			return "", nil
		}
		return v[0], nil
	}
	fields := map[string]string{}
	for _, k := range []string{"team_id", "channel_id", "user_id", "user_name", "text", "response_url", "enterprise_id"} {
		v, err := get(k)
		if err != nil {
			return calls.ChatRequest{}, err
		}
		fields[k] = v
	}
	for _, k := range []string{"team_id", "channel_id", "user_id"} {
		if err := checkID(k, fields[k]); err != nil {
			return calls.ChatRequest{}, err
		}
	}
	if len(fields["user_name"]) > 255 {
		return calls.ChatRequest{}, malformed("user_name is longer than 255 bytes")
	}
	out := calls.ChatRequest{
		// Slack does not retry slash commands: no delivery id.
		User:    calls.ChatUser{ID: fields["user_id"], Name: fields["user_name"]},
		Surface: calls.Surface{Chat: a.name, Workspace: fields["team_id"], Channel: fields["channel_id"]},
	}
	p := &pending{endpoint: PathCommands, responseURL: fields["response_url"]}
	out.Private = p
	cmd, err := a.command(fields["text"])
	if err != nil {
		p.commandErr = err
		return out, nil
	}
	out.Command = &cmd
	return out, nil
}

// command parses a slash command's text after turning Slack's markup into
// the grammar's words: <@U123|ada> → @U123, other <…> into their label,
// and &amp; &lt; &gt; back into & < >.
func (a *App) command(text string) (calls.Command, error) {
	cmd, err := calls.ParseCommand(FromSlackText(text), a.isProvider)
	if err != nil {
		return cmd, err
	}
	for _, m := range cmd.Mentions {
		if !userIDPattern.MatchString(m) {
			return calls.Command{}, fmt.Errorf("%w: mention people with @ and pick them from Slack's list, so Slack sends who they are", calls.ErrInvalidInput)
		}
	}
	return cmd, nil
}

var (
	// userIDPattern is a Slack user id (U…, or W… on Enterprise Grid).
	userIDPattern = regexp.MustCompile(`^[UW][A-Z0-9]{1,30}$`)
	// markup is Slack's <…> escapes in message text.
	markup    = regexp.MustCompile(`<([^<>]*)>`)
	idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

// FromSlackText turns Slack-escaped text (what a slash command with
// "Escape channels, users, and links" sends) into plain words: user
// mentions become @U123, channels #name, links their label or URL, special
// mentions (<!here>) their bare word, never a mention, and the three HTML
// entities Slack escapes come back.
func FromSlackText(s string) string {
	s = markup.ReplaceAllStringFunc(s, func(m string) string {
		inner := m[1 : len(m)-1]
		target, label, hasLabel := strings.Cut(inner, "|")
		switch {
		case strings.HasPrefix(target, "@"):
			if userIDPattern.MatchString(target[1:]) {
				return target
			}
		case strings.HasPrefix(target, "#"):
			if hasLabel {
				return "#" + strings.TrimLeft(label, "#@!")
			}
			return target
		case strings.HasPrefix(target, "!"):
			// <!here>, <!subteam^S1|@team>, <!date…|text>: only words, so
			// nothing rings a whole channel or group.
			if hasLabel {
				return strings.TrimLeft(label, "@!#")
			}
			w, _, _ := strings.Cut(target[1:], "^")
			return w
		}
		if hasLabel {
			return strings.TrimLeft(label, "@!")
		}
		return strings.TrimLeft(target, "@!")
	})
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}

func checkID(field, v string) error {
	if v == "" {
		return malformed("%s is missing", field)
	}
	if len(v) > maxIDLength || !idPattern.MatchString(v) {
		return malformed("%s is not a Slack id", field)
	}
	return nil
}

// interactionPayload is the part of a block_actions payload read here.
type interactionPayload struct {
	Type string `json:"type"`
	User struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Name     string `json:"name"`
		TeamID   string `json:"team_id"`
		Locale   string `json:"locale"`
	} `json:"user"`
	Team *struct {
		ID string `json:"id"`
	} `json:"team"`
	Channel *struct {
		ID string `json:"id"`
	} `json:"channel"`
	Container struct {
		ChannelID string `json:"channel_id"`
	} `json:"container"`
	ResponseURL string `json:"response_url"`
	Actions     []struct {
		ActionID string `json:"action_id"`
		Value    string `json:"value"`
	} `json:"actions"`
}

func (a *App) parseInteraction(body []byte) (calls.ChatRequest, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return calls.ChatRequest{}, malformed("the interaction is not a valid form")
	}
	if len(form["payload"]) != 1 {
		return calls.ChatRequest{}, malformed("want exactly one payload field")
	}
	var p interactionPayload
	if err := decodeJSON([]byte(form["payload"][0]), &p); err != nil {
		return calls.ChatRequest{}, err
	}
	if p.Type != "block_actions" || len(p.Actions) == 0 {
		// Shortcuts, view submissions, …: acked, nothing runs.
		return calls.ChatRequest{Reply: ack}, nil
	}
	act := p.Actions[0]
	switch act.ActionID {
	case ActionJoin, ActionEnd, ActionAccept, ActionDecline:
	default:
		// The personal link button, and buttons of other apps' messages:
		// a URL button still sends a payload, which must be acked.
		return calls.ChatRequest{Reply: ack}, nil
	}
	if act.Value == "" || len(act.Value) > calls.MaxIDLength || !idPattern.MatchString(act.Value) {
		return calls.ChatRequest{}, malformed("the button's value is not a call id")
	}
	team := p.User.TeamID
	if p.Team != nil && p.Team.ID != "" {
		team = p.Team.ID
	}
	channel := p.Container.ChannelID
	if p.Channel != nil && p.Channel.ID != "" {
		channel = p.Channel.ID
	}
	if err := checkID("user.id", p.User.ID); err != nil {
		return calls.ChatRequest{}, err
	}
	if err := checkID("team.id", team); err != nil {
		return calls.ChatRequest{}, err
	}
	if channel != "" {
		if err := checkID("channel.id", channel); err != nil {
			return calls.ChatRequest{}, err
		}
	}
	name := p.User.Name
	if name == "" {
		name = p.User.Username
	}
	if len(name) > 255 {
		name = ""
	}
	return calls.ChatRequest{
		User:    calls.ChatUser{ID: p.User.ID, Name: name, Locale: p.User.Locale},
		Surface: calls.Surface{Chat: a.name, Workspace: team, Channel: channel},
		Action:  &calls.ChatAction{Kind: act.ActionID, CallID: act.Value},
		Private: &pending{endpoint: PathInteractions, responseURL: p.ResponseURL, locale: p.User.Locale},
	}, nil
}

// eventEnvelope is the part of an Events API request read here.
type eventEnvelope struct {
	Type      string `json:"type"`
	Challenge string `json:"challenge"`
	TeamID    string `json:"team_id"`
	EventID   string `json:"event_id"`
	EventTime int64  `json:"event_time"`
	Event     struct {
		Type   string `json:"type"`
		Tokens struct {
			OAuth []string `json:"oauth"`
			Bot   []string `json:"bot"`
		} `json:"tokens"`
	} `json:"event"`
}

func (a *App) parseEvent(ctx context.Context, req calls.WebhookRequest) (calls.ChatRequest, error) {
	var e eventEnvelope
	if err := decodeJSON(req.Body, &e); err != nil {
		return calls.ChatRequest{}, err
	}
	switch e.Type {
	case "url_verification":
		if e.Challenge == "" || len(e.Challenge) > 1024 {
			return calls.ChatRequest{}, malformed("url_verification without a usable challenge")
		}
		return calls.ChatRequest{Reply: &calls.WebhookReply{
			Status: http.StatusOK, ContentType: "text/plain; charset=utf-8", Body: []byte(e.Challenge),
		}}, nil
	case "event_callback":
	default:
		return calls.ChatRequest{Reply: ack}, nil
	}
	if e.EventID == "" || len(e.EventID) > maxIDLength || !idPattern.MatchString(e.EventID) {
		return calls.ChatRequest{}, malformed("event_callback without a usable event_id")
	}
	// Slack repeats an event it thinks failed (X-Slack-Retry-Num) with the
	// same event_id: that is the delivery id.
	out := calls.ChatRequest{DeliveryID: "event:" + e.EventID, Reply: ack}
	if e.TeamID != "" {
		if err := checkID("team_id", e.TeamID); err != nil {
			return calls.ChatRequest{}, err
		}
		out.Surface = calls.Surface{Chat: a.name, Workspace: e.TeamID}
	}
	revoked := e.Event.Type == "app_uninstalled" || (e.Event.Type == "tokens_revoked" && len(e.Event.Tokens.Bot) > 0)
	if !revoked || e.TeamID == "" || a.installs == nil {
		return out, nil
	}
	at := time.Unix(e.EventTime, 0)
	if e.EventTime <= 0 {
		at = a.now()
	}
	if err := a.forget(ctx, e.TeamID, at); err != nil {
		// Not acked: Slack retries, and the retry, being the same event,
		// is handled the same way.
		return calls.ChatRequest{}, err
	}
	a.log.InfoContext(ctx, "slack workspace token removed", "team", e.TeamID, "event", e.Event.Type,
		"retry", req.Header.Get(HeaderRetryNum))
	return out, nil
}

// forget removes a workspace's installation, unless it was installed again
// after the event (a late retry of an old app_uninstalled must not remove
// a fresh install).
func (a *App) forget(ctx context.Context, team string, at time.Time) error {
	in, err := a.installs.GetInstallation(ctx, a.name, team)
	if errors.Is(err, calls.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if in.UpdatedAt.After(at.Add(time.Second)) {
		return nil
	}
	return a.installs.DeleteInstallation(ctx, a.name, team)
}

// maxJSONDepth bounds JSON nesting.
const maxJSONDepth = 32

// decodeJSON decodes one JSON object; errors wrap ErrWebhookMalformed.
func decodeJSON(b []byte, v any) error {
	depth, maxD := 0, 0
	inStr, esc := false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '{' || c == '['):
			depth++
			maxD = max(maxD, depth)
		case !inStr && (c == '}' || c == ']'):
			depth--
		}
	}
	if maxD > maxJSONDepth {
		return malformed("the JSON is nested too deeply")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return malformed("the JSON could not be read")
	}
	if dec.More() {
		return malformed("the JSON has trailing data")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
