package mattermost

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/callgate/callgate/calls"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

const maxIDLength = 255

// pending is what ParseChat leaves for ReplyChat.
type pending struct {
	commandErr error
	action     bool
}

// ParseChat verifies and parses a slash command ("commands") or a button
// click ("actions").
func (a *App) ParseChat(_ context.Context, path string, req calls.WebhookRequest) (calls.ChatRequest, error) {
	if len(req.Body) > MaxBodyBytes {
		return calls.ChatRequest{}, malformed("the body is larger than %d bytes", MaxBodyBytes)
	}
	switch strings.Trim(path, "/") {
	case "commands":
		return a.parseCommand(req)
	case "actions":
		return a.parseAction(req)
	}
	return calls.ChatRequest{}, malformed("unknown path %q: use commands or actions", truncate(path, 64))
}

func (a *App) parseCommand(req calls.WebhookRequest) (calls.ChatRequest, error) {
	var form url.Values
	var err error
	switch req.Method {
	case http.MethodPost, "":
		form, err = url.ParseQuery(string(req.Body))
	case http.MethodGet:
		u, perr := url.Parse(req.URL)
		if perr != nil {
			return calls.ChatRequest{}, malformed("bad URL")
		}
		form, err = url.ParseQuery(u.RawQuery)
	default:
		return calls.ChatRequest{}, malformed("method %s: slash commands are POST or GET", req.Method)
	}
	if err != nil {
		return calls.ChatRequest{}, malformed("the form cannot be parsed")
	}
	if err := a.checkToken(form, req.Header); err != nil {
		return calls.ChatRequest{}, err
	}
	for _, k := range []string{"token", "team_id", "channel_id", "user_id", "user_name", "text", "command", "trigger_id"} {
		if len(form[k]) > 1 {
			return calls.ChatRequest{}, malformed("more than one %s", k)
		}
	}
	for _, k := range []string{"channel_id", "user_id"} {
		if err := checkID(k, form.Get(k), true); err != nil {
			return calls.ChatRequest{}, err
		}
	}
	for _, k := range []string{"team_id", "user_name"} {
		if err := checkID(k, form.Get(k), false); err != nil {
			return calls.ChatRequest{}, err
		}
	}
	if !utf8.ValidString(form.Get("text")) {
		return calls.ChatRequest{}, malformed("text is not valid UTF-8")
	}
	out := calls.ChatRequest{
		User:    calls.ChatUser{ID: form.Get("user_id"), Name: form.Get("user_name")},
		Surface: calls.Surface{Chat: a.name, Workspace: form.Get("team_id"), Channel: form.Get("channel_id")},
	}
	p := &pending{}
	out.Private = p
	cmd, err := calls.ParseCommand(mentions(form.Get("text"), form.Get("user_mentions"), form.Get("user_mentions_ids")), a.isProvider)
	if err != nil {
		p.commandErr = err
		return out, nil
	}
	out.Command = &cmd
	return out, nil
}

// checkToken compares the command's token (form field, or the
// Authorization header "Token …") with every configured token in constant
// time.
func (a *App) checkToken(form url.Values, h http.Header) error {
	token := form.Get("token")
	if auth := h.Get("Authorization"); auth != "" {
		ht, ok := strings.CutPrefix(auth, "Token ")
		if !ok {
			return unauthenticated("the Authorization header is not \"Token …\"")
		}
		if token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(ht)) != 1 {
			return unauthenticated("the token field and the Authorization header differ")
		}
		token = ht
	}
	if token == "" {
		return unauthenticated("no command token")
	}
	ok := 0
	for _, t := range a.tokens {
		ok |= subtle.ConstantTimeCompare([]byte(token), t)
	}
	if ok != 1 {
		return unauthenticated("the command token does not match")
	}
	return nil
}

// mentions maps "@username" to "@<user id>" when Mattermost sent both
// lists (user_mentions, user_mentions_ids; comma or space separated).
func mentions(text, names, ids string) string {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	}
	n, i := split(names), split(ids)
	if len(n) == 0 || len(n) != len(i) {
		return text
	}
	order := make([]int, len(n))
	for k := range order {
		order[k] = k
	}
	sort.SliceStable(order, func(x, y int) bool { return len(n[order[x]]) > len(n[order[y]]) })
	words := strings.Fields(text)
	for w, word := range words {
		for _, k := range order {
			if strings.EqualFold(strings.TrimPrefix(word, "@"), strings.TrimPrefix(n[k], "@")) && strings.HasPrefix(word, "@") {
				words[w] = "@" + i[k]
				break
			}
		}
	}
	return strings.Join(words, " ")
}

// actionRequest is Mattermost's integration action POST.
type actionRequest struct {
	UserID    string        `json:"user_id"`
	UserName  string        `json:"user_name"`
	ChannelID string        `json:"channel_id"`
	TeamID    string        `json:"team_id"`
	PostID    string        `json:"post_id"`
	Context   actionContext `json:"context"`
}

type actionContext struct {
	Action string `json:"action"`
	CallID string `json:"call_id"`
	Sig    string `json:"sig"`
}

// ActionSignature is the sig of a button's context.
func ActionSignature(secret []byte, action, callID, channelID string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("callgate-mattermost-action\x00" + action + "\x00" + callID + "\x00" + channelID))
	return hex.EncodeToString(m.Sum(nil))
}

func (a *App) parseAction(req calls.WebhookRequest) (calls.ChatRequest, error) {
	if req.Method != "" && req.Method != http.MethodPost {
		return calls.ChatRequest{}, malformed("method %s: actions are POSTed", req.Method)
	}
	if !utf8.Valid(req.Body) {
		return calls.ChatRequest{}, malformed("the body is not valid UTF-8")
	}
	var r actionRequest
	dec := json.NewDecoder(bytes.NewReader(req.Body))
	if err := dec.Decode(&r); err != nil {
		return calls.ChatRequest{}, malformed("the body is not an action: %v", err)
	}
	sig, err := hex.DecodeString(r.Context.Sig)
	if err != nil || len(sig) != sha256.Size {
		return calls.ChatRequest{}, unauthenticated("the action's context is not signed")
	}
	want, _ := hex.DecodeString(ActionSignature(a.actionSecret, r.Context.Action, r.Context.CallID, r.ChannelID))
	if !hmac.Equal(sig, want) {
		return calls.ChatRequest{}, unauthenticated("the action's signature does not match")
	}
	if !knownAction(r.Context.Action) || checkID("call_id", r.Context.CallID, true) != nil {
		return calls.ChatRequest{}, malformed("unknown action")
	}
	for k, v := range map[string]string{"user_id": r.UserID, "channel_id": r.ChannelID} {
		if err := checkID(k, v, true); err != nil {
			return calls.ChatRequest{}, err
		}
	}
	for k, v := range map[string]string{"team_id": r.TeamID, "user_name": r.UserName} {
		if err := checkID(k, v, false); err != nil {
			return calls.ChatRequest{}, err
		}
	}
	return calls.ChatRequest{
		User:    calls.ChatUser{ID: r.UserID, Name: r.UserName},
		Surface: calls.Surface{Chat: a.name, Workspace: r.TeamID, Channel: r.ChannelID},
		Action:  &calls.ChatAction{Kind: r.Context.Action, CallID: r.Context.CallID},
		Private: &pending{action: true},
	}, nil
}

func knownAction(k string) bool { return k == "join" || k == "end" || k == "accept" || k == "decline" }

func checkID(field, v string, required bool) error {
	if v == "" {
		if required {
			return malformed("%s is required", field)
		}
		return nil
	}
	if len(v) > maxIDLength || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return malformed("%s is too long or holds control characters", field)
	}
	return nil
}

// ReplyChat answers a command with an ephemeral message, and a click with
// {"ephemeral_text"} or {"update"}.
func (a *App) ReplyChat(_ context.Context, req calls.ChatRequest, out calls.ChatOutcome) (calls.WebhookReply, error) {
	t := func(key string) string { return a.templates.Text(a.locale, key) }
	names := map[string]string{calls.ChatUserActor(a.name, req.User.ID).UserID: req.User.Name}
	if p, _ := req.Private.(*pending); p != nil && p.action {
		var body any
		switch {
		case out.Err != nil:
			body = map[string]string{"ephemeral_text": escape(reason(out.Err)) + "."}
		case req.Action.Kind == "join" || (req.Action.Kind == "accept" && out.PersonalURL != ""):
			body = map[string]string{"ephemeral_text": escape(t("card.personal_link")) + " " + out.PersonalURL}
		default:
			body = map[string]any{"update": map[string]any{"message": "", "props": map[string]any{"attachments": []Attachment{a.render(out.Call, out.JoinURL, req.Surface.Channel, names)}}}}
		}
		return jsonReply(body)
	}
	text := ""
	p, _ := req.Private.(*pending)
	switch {
	case p != nil && p.commandErr != nil:
		text = escape(reason(p.commandErr)) + ". " + escape(t("card.help"))
	case out.Err != nil:
		text = escape(reason(out.Err)) + "."
	case out.Call.ID == "" && len(out.Notices) > 0:
		text = ""
	case req.Command == nil || req.Command.Kind == calls.CommandHelp || out.Call.ID == "":
		text = escape(t("card.help"))
	default:
		card := a.card(out.Call, out.JoinURL, names)
		lines := []string{"**" + escape(card.Title) + "** · " + escape(card.StateText)}
		if req.Command.Kind == calls.CommandEnd {
			lines = []string{"**" + escape(card.Title) + "** · " + escape(card.Summary)}
		} else if !out.Created {
			lines = append([]string{escape(t("card.live_call_here"))}, lines...)
		}
		if out.PersonalURL != "" {
			lines = append(lines, escape(t("card.personal_link"))+" "+out.PersonalURL)
		}
		text = strings.Join(lines, "\n")
	}
	for _, k := range out.Notices {
		text = strings.TrimLeft(text+"\n"+escape(t(k)), "\n")
	}
	return jsonReply(map[string]string{"response_type": "ephemeral", "text": text})
}

func jsonReply(v any) (calls.WebhookReply, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return calls.WebhookReply{}, err
	}
	return calls.WebhookReply{Status: http.StatusOK, ContentType: "application/json", Body: b}, nil
}

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

func unauthenticated(format string, args ...any) error {
	return fmt.Errorf("%w: %s", calls.ErrWebhookUnauthenticated, fmt.Sprintf(format, args...))
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
