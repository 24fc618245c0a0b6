package streamchat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// ActionField is the form_data key of callgate's buttons; its value is
// "<action>:<call id>".
const ActionField = "callgate_action"

// MaxCommandAge is how old a command's message may be (its created_at,
// signed with the body): Stream signs no timestamp, so this is the replay
// window of a captured command.
const MaxCommandAge = 5 * time.Minute

const maxIDLength = 255

// commandBody is what Stream POSTs to the custom action handler URL.
type commandBody struct {
	Type     string          `json:"type"`
	Message  json.RawMessage `json:"message"`
	User     streamUser      `json:"user"`
	FormData json.RawMessage `json:"form_data"`
}

type streamUser struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Language string            `json:"language"`
	Custom   map[string]string `json:"Custom"`
}

type streamMessage struct {
	ID             string       `json:"id"`
	Text           string       `json:"text"`
	Command        string       `json:"command"`
	Args           string       `json:"args"`
	CID            string       `json:"cid"`
	Type           string       `json:"type"`
	CreatedAt      string       `json:"created_at"`
	MentionedUsers []streamUser `json:"mentioned_users"`
}

// pending is what ParseChat leaves for ReplyChat.
type pending struct {
	// message is the message as Stream sent it, rewritten by the answer.
	message map[string]json.RawMessage
	// foreign: not callgate's command or button; the message is kept.
	foreign    bool
	commandErr error
}

// ParseChat verifies and parses a custom command, a button click or a
// webhook event.
func (a *App) ParseChat(_ context.Context, path string, req calls.WebhookRequest) (calls.ChatRequest, error) {
	path = strings.Trim(path, "/")
	switch path {
	case "", "commands", "events", a.command:
	default:
		return calls.ChatRequest{}, malformed("unknown path %q: use commands (custom action handler URL) or events (webhook URL)", truncate(path, 64))
	}
	if req.Method != "" && req.Method != http.MethodPost {
		return calls.ChatRequest{}, malformed("method %s: Stream POSTs", req.Method)
	}
	if len(req.Body) > MaxBodyBytes {
		return calls.ChatRequest{}, malformed("the body is larger than %d bytes", MaxBodyBytes)
	}
	body, err := VerifyWebhook(req.Header, req.Body, a.secrets...)
	if err != nil {
		return calls.ChatRequest{}, err
	}
	if k := req.Header.Get(HeaderAPIKey); k != "" && k != a.key {
		return calls.ChatRequest{}, fmt.Errorf("%w: the request is for another Stream app", calls.ErrWebhookUnauthenticated)
	}
	if !utf8.Valid(body) {
		return calls.ChatRequest{}, malformed("the body is not valid UTF-8")
	}
	var env commandBody
	if err := json.Unmarshal(body, &env); err != nil {
		return calls.ChatRequest{}, malformed("the body is not a JSON object: %v", err)
	}
	isCommand := path != "events" && len(env.Message) > 0 && !bytes.Equal(env.Message, []byte("null")) &&
		(env.Type == "" || env.Type == "custom_action" || env.Type == "custom_command")
	if !isCommand {
		// A webhook event: verified, acknowledged, nothing to do.
		return calls.ChatRequest{Reply: &calls.WebhookReply{Status: http.StatusOK}}, nil
	}
	var msg streamMessage
	raw := map[string]json.RawMessage{}
	if err := json.Unmarshal(env.Message, &msg); err != nil {
		return calls.ChatRequest{}, malformed("message: %v", err)
	}
	if err := json.Unmarshal(env.Message, &raw); err != nil {
		return calls.ChatRequest{}, malformed("message: %v", err)
	}
	p := &pending{message: raw}
	if err := checkID("user.id", env.User.ID); err != nil {
		return calls.ChatRequest{}, err
	}
	if err := checkID("message.id", msg.ID); err != nil {
		return calls.ChatRequest{}, err
	}
	typ, id, ok := strings.Cut(msg.CID, ":")
	if !ok || typ == "" || id == "" || len(msg.CID) > maxIDLength {
		return calls.ChatRequest{}, malformed("message.cid must be \"<type>:<id>\"")
	}
	name := env.User.Name
	if name == "" {
		name = env.User.Custom["name"]
	}
	out := calls.ChatRequest{
		User:    calls.ChatUser{ID: env.User.ID, Name: truncate(name, maxIDLength)},
		Surface: calls.Surface{Chat: a.name, Channel: msg.CID},
		Private: p,
	}
	if templates.IsBuiltinLang(env.User.Language) {
		out.User.Locale = env.User.Language
	}
	form, err := formData(env.FormData)
	if err != nil {
		return calls.ChatRequest{}, err
	}
	if v, clicked := form[ActionField]; clicked {
		kind, callID, ok := strings.Cut(v, ":")
		if !ok || !knownAction(kind) || checkCallID(callID) != nil {
			return calls.ChatRequest{}, malformed("%s must be \"<join|end|accept|decline>:<call id>\"", ActionField)
		}
		out.Action = &calls.ChatAction{Kind: kind, CallID: callID}
		return out, nil
	}
	if len(form) > 0 || msg.Command != a.command {
		// Another command's message or another button: not ours.
		p.foreign = true
		return out, nil
	}
	if msg.CreatedAt != "" {
		created, err := time.Parse(time.RFC3339Nano, msg.CreatedAt)
		if err != nil {
			return calls.ChatRequest{}, malformed("message.created_at is not a time")
		}
		if age := a.now().Sub(created); age > MaxCommandAge || age < -MaxCommandAge {
			return calls.ChatRequest{}, fmt.Errorf("%w: the command's message was created %s away from now (at most %s allowed)", calls.ErrWebhookUnauthenticated, age.Abs().Truncate(time.Second), MaxCommandAge)
		}
	}
	ids := req.Header.Values(HeaderWebhookID)
	switch {
	case len(ids) > 1:
		return calls.ChatRequest{}, malformed("more than one %s header", HeaderWebhookID)
	case len(ids) == 1 && ids[0] != "":
		if err := checkID(HeaderWebhookID, ids[0]); err != nil {
			return calls.ChatRequest{}, err
		}
		out.DeliveryID = ids[0]
	default:
		// A resent message keeps its id: the same call is found.
		out.DeliveryID = "message:" + msg.ID
	}
	text := msg.Args
	if text == "" {
		text = strings.TrimPrefix(strings.TrimSpace(msg.Text), "/"+a.command)
	}
	cmd, err := calls.ParseCommand(mentions(text, msg.MentionedUsers), a.isProvider)
	if err != nil {
		p.commandErr = err
		return out, nil
	}
	out.Command = &cmd
	if cmd.Kind == calls.CommandStart {
		// The command's own message, rewritten by the answer to carry the
		// call, is the card the outbox keeps current.
		out.MessageRef = msg.ID
	}
	return out, nil
}

// mentions turns "@Name" and "@id" of the message's mentioned users into
// "@id", longest names first.
func mentions(text string, users []streamUser) string {
	type pair struct{ from, to string }
	var pairs []pair
	for _, u := range users {
		if u.ID == "" || strings.ContainsFunc(u.ID, badIDRune) {
			continue
		}
		if u.Name != "" {
			pairs = append(pairs, pair{"@" + u.Name, "@" + u.ID})
		}
	}
	sort.SliceStable(pairs, func(i, j int) bool { return len(pairs[i].from) > len(pairs[j].from) })
	for _, p := range pairs {
		text = strings.ReplaceAll(text, p.from, p.to)
	}
	return text
}

func formData(raw json.RawMessage) (map[string]string, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, malformed("form_data must be an object")
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		s, _ := v.(string)
		out[k] = s
	}
	return out, nil
}

func knownAction(k string) bool {
	return k == "join" || k == "end" || k == "accept" || k == "decline"
}

func checkCallID(id string) error {
	if id == "" || len(id) > 128 || strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return malformed("invalid call id")
	}
	return nil
}

func checkID(field, v string) error {
	if v == "" {
		return malformed("%s is required", field)
	}
	if len(v) > maxIDLength || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return malformed("%s is too long or holds control characters", field)
	}
	return nil
}

// ReplyChat answers Stream's custom action handler request: {"message": …}
// rewriting the message being sent (or clicked).
func (a *App) ReplyChat(_ context.Context, req calls.ChatRequest, out calls.ChatOutcome) (calls.WebhookReply, error) {
	p, _ := req.Private.(*pending)
	if p == nil {
		return calls.WebhookReply{Status: http.StatusOK}, nil
	}
	lang := req.User.Locale
	if lang == "" {
		lang = a.locale
	}
	msg := map[string]any{}
	for k, v := range p.message {
		msg[k] = v
	}
	delete(msg, "mml")
	t := func(key string) string { return a.templates.Text(lang, key) }
	errorMessage := func(text string) {
		msg["type"] = "error"
		msg["text"] = text
		msg["attachments"] = []Attachment{}
	}
	names := map[string]string{calls.ChatUserActor(a.name, req.User.ID).UserID: req.User.Name}
	switch {
	case p.foreign:
		// Keep the message as it came.
	case p.commandErr != nil:
		errorMessage(templates.EscapeMarkdown(reason(p.commandErr) + ". " + t("card.help")))
	case out.Err != nil && req.Action == nil:
		errorMessage(templates.EscapeMarkdown(reason(out.Err) + "."))
	case req.Action != nil:
		if out.Err != nil {
			a.log.Info("stream click refused", "chat", a.name, "action", req.Action.Kind, "call_id", req.Action.CallID, "err", out.Err)
		}
		if out.Call.ID != "" {
			text, att := a.render(out.Call, out.JoinURL, lang, names)
			msg["text"], msg["attachments"] = text, []Attachment{att}
		}
		if typ, _ := p.message["type"]; string(typ) == `"error"` {
			msg["type"] = "ephemeral"
		}
	case req.Command == nil || req.Command.Kind == calls.CommandHelp || out.Call.ID == "":
		errorMessage(templates.EscapeMarkdown(t("card.help")))
	case req.Command.Kind == calls.CommandEnd:
		card := a.card(out.Call, out.JoinURL, lang, names)
		msg["type"] = "regular"
		msg["text"] = templates.EscapeMarkdown(card.Title) + " · " + templates.EscapeMarkdown(card.Summary)
		msg["attachments"] = []Attachment{}
	case !out.Created:
		// A live call is here already: shown to the sender only, with a
		// link signed for them.
		text, att := a.render(out.Call, out.JoinURL, lang, names)
		lines := []string{templates.EscapeMarkdown(t("card.live_call_here")), text}
		if out.PersonalURL != "" {
			lines = append(lines, templates.EscapeMarkdown(t("card.personal_link"))+" "+out.PersonalURL)
			att.TitleLink = out.PersonalURL
		}
		msg["type"] = "ephemeral"
		msg["text"] = strings.Join(lines, "\n")
		msg["attachments"] = []Attachment{att}
	default:
		text, att := a.render(out.Call, out.JoinURL, lang, names)
		msg["type"] = "regular"
		msg["text"] = text
		msg["attachments"] = []Attachment{att}
	}
	body, err := json.Marshal(map[string]any{"message": msg})
	if err != nil {
		return calls.WebhookReply{}, err
	}
	return calls.WebhookReply{Status: http.StatusOK, ContentType: "application/json", Body: body}, nil
}

func (a *App) card(c calls.Call, joinURL, lang string, names map[string]string) templates.Card {
	all := map[string]string{}
	for _, p := range c.Participants {
		if p.Name != "" {
			all[p.Identity] = p.Name
		}
	}
	if p, ok := strings.CutPrefix(c.CreatedBy, a.name+":"); ok && all[c.CreatedBy] == "" {
		all[c.CreatedBy] = p
	}
	for k, v := range names {
		if v != "" {
			all[k] = v
		}
	}
	return a.templates.Card(templates.CardInput{Call: c, Names: all, Recordings: c.Recordings, JoinURL: joinURL, Lang: lang, Now: a.now()})
}

// reason is an error's message without the sentinel's prefix.
func reason(err error) string {
	s := err.Error()
	for _, sentinel := range []error{calls.ErrInvalidInput, calls.ErrForbidden, calls.ErrNotFound, calls.ErrCallEnded, calls.ErrInvalidTransition} {
		if rest, ok := strings.CutPrefix(s, sentinel.Error()+": "); ok {
			s = rest
			break
		}
	}
	return strings.TrimRight(s, ".")
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", calls.ErrWebhookMalformed, fmt.Sprintf(format, args...))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
