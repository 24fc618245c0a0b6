package voiplink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/callgate/callgate/calls"
)

// Limits of a command request.
const (
	// MaxBodyBytes bounds a command's body.
	MaxBodyBytes = 64 << 10
	// MaxIDLength bounds conversation, sender and delivery ids and the
	// sender's name, in bytes.
	MaxIDLength = 255
	// maxLocaleLength bounds a BCP 47 tag.
	maxLocaleLength = 35
	// maxDepth bounds JSON nesting.
	maxDepth = 16
)

// CommandBody is the body an app POSTs for a `/call …` a user typed:
//
//	{"conversation_id": "c-42", "sender": {"id": "u-7", "name": "Ada", "locale": "en"}, "text": "/call video Standup"}
//
// Sender may also be a plain string, the user id: "sender": "u-7". Only
// sender.id is required; name and locale are optional. Text is what the user
// typed, with or without the leading "/call" ("" is a plain `/call`).
// DeliveryID is optional: an id the app keeps for retries of this request,
// so a retry does not run twice. It may instead be sent in the
// X-Callgate-Delivery header, which the signature does not cover; in the
// body it is signed. When both are sent they must be equal.
type CommandBody struct {
	ConversationID string  `json:"conversation_id"`
	Sender         Sender  `json:"sender"`
	Text           *string `json:"text"`
	DeliveryID     string  `json:"delivery_id,omitempty"`
}

// Sender is who typed the command.
type Sender struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Locale string `json:"locale,omitempty"`
}

// UnmarshalJSON accepts an object {"id", "name", "locale"} or a string id.
func (s *Sender) UnmarshalJSON(raw []byte) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		*s = Sender{}
		return json.Unmarshal(raw, &s.ID)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return errors.New("sender must be an object or a string id")
	}
	type plain Sender
	var p plain
	if err := json.Unmarshal(raw, &p); err != nil {
		return err
	}
	*s = Sender(p)
	return nil
}

// commandKeys and senderKeys are the only keys a command body may hold,
// spelled exactly so.
var (
	commandKeys = map[string]bool{"conversation_id": true, "sender": true, "text": true, "delivery_id": true}
	senderKeys  = map[string]bool{"id": true, "name": true, "locale": true}
)

// pending is what ParseChat leaves in ChatRequest.Private for ReplyChat.
type pending struct {
	// commandErr is why the text is not a command; the request then has no
	// Command and nothing runs.
	commandErr error
}

// ParseChat verifies and parses a command request. Path must be empty:
// commands arrive at /webhooks/chats/<name> itself.
func (a *App) ParseChat(_ context.Context, path string, req calls.WebhookRequest) (calls.ChatRequest, error) {
	if strings.Trim(path, "/") != "" {
		return calls.ChatRequest{}, malformed("unknown path %q: commands are posted to the chat's webhook URL itself", truncate(path, 64))
	}
	if len(req.Body) > MaxBodyBytes {
		return calls.ChatRequest{}, malformed("the body is larger than %d bytes", MaxBodyBytes)
	}
	if err := Verify(req.Header, req.Body, a.now(), a.maxSkew, a.secrets...); err != nil {
		return calls.ChatRequest{}, err
	}
	cmd, err := DecodeCommand(req.Body)
	if err != nil {
		return calls.ChatRequest{}, err
	}
	deliveryID := cmd.DeliveryID
	if h := req.Header.Values(HeaderDelivery); len(h) > 0 {
		if len(h) > 1 {
			return calls.ChatRequest{}, malformed("more than one %s header", HeaderDelivery)
		}
		if err := checkID(HeaderDelivery, h[0], false); err != nil {
			return calls.ChatRequest{}, err
		}
		if deliveryID != "" && deliveryID != h[0] {
			return calls.ChatRequest{}, malformed("delivery_id and the %s header differ", HeaderDelivery)
		}
		deliveryID = h[0]
	}
	out := calls.ChatRequest{
		// A signature is one request: apps sign each attempt anew, so the
		// same signature twice is a replay.
		ReplayKey:  strings.Join(req.Header.Values(HeaderSignature), ","),
		DeliveryID: deliveryID,
		User:       calls.ChatUser{ID: cmd.Sender.ID, Name: cmd.Sender.Name, Locale: cmd.Sender.Locale},
		Surface:    calls.Surface{Chat: a.name, Channel: cmd.ConversationID},
	}
	parsed, err := calls.ParseCommand(*cmd.Text, a.isProvider)
	if err != nil {
		out.Private = &pending{commandErr: err}
		return out, nil
	}
	out.Command = &parsed
	return out, nil
}

// DecodeCommand decodes and checks a command body strictly. It does not
// verify the signature: call Verify first. Errors wrap
// calls.ErrWebhookMalformed and say what is wrong.
func DecodeCommand(body []byte) (CommandBody, error) {
	var cmd CommandBody
	if !utf8.Valid(body) {
		return cmd, malformed("the body is not valid UTF-8")
	}
	if err := checkKeys(body); err != nil {
		return cmd, err
	}
	if err := json.Unmarshal(body, &cmd); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return cmd, malformed("%s has the wrong type (%s)", te.Field, te.Value)
		}
		return cmd, malformed("%v", err)
	}
	if err := checkID("conversation_id", cmd.ConversationID, false); err != nil {
		return cmd, err
	}
	if err := checkID("sender.id", cmd.Sender.ID, false); err != nil {
		return cmd, err
	}
	if err := checkID("sender.name", cmd.Sender.Name, true); err != nil {
		return cmd, err
	}
	if len(cmd.Sender.Locale) > maxLocaleLength || strings.ContainsFunc(cmd.Sender.Locale, func(r rune) bool {
		return !(r == '-' || r == '_' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)))
	}) {
		return cmd, malformed("sender.locale must be a language tag such as \"en-GB\"")
	}
	if cmd.DeliveryID != "" {
		if err := checkID("delivery_id", cmd.DeliveryID, false); err != nil {
			return cmd, err
		}
	}
	if cmd.Text == nil {
		return cmd, malformed("text is required (\"\" for a plain /call)")
	}
	return cmd, nil
}

// checkID checks an id or name: at most MaxIDLength bytes, no control
// characters, and not empty (or blank) unless optional.
func checkID(field, v string, optional bool) error {
	switch {
	case v == "" && optional:
		return nil
	case strings.TrimSpace(v) == "":
		return malformed("%s is required", field)
	case len(v) > MaxIDLength:
		return malformed("%s is longer than %d bytes", field, MaxIDLength)
	case !utf8.ValidString(v):
		return malformed("%s is not valid UTF-8", field)
	case strings.ContainsFunc(v, unicode.IsControl):
		return malformed("%s contains control characters", field)
	}
	return nil
}

// checkKeys walks the JSON: it must be one object holding only the known
// keys, spelled exactly, none twice, at most maxDepth deep, and nothing
// after it.
func checkKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return malformed("the body is not JSON: %v", err)
	}
	if tok != json.Delim('{') {
		return malformed("the body must be a JSON object")
	}
	if err := walkObject(dec, "", commandKeys, 1); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return malformed("unexpected data after the JSON object")
	}
	return nil
}

// walkObject reads an object's members after its '{'. allowed nil means any
// key (still none twice).
func walkObject(dec *json.Decoder, path string, allowed map[string]bool, depth int) error {
	seen := map[string]bool{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return malformed("the body is not valid JSON: %v", err)
		}
		if tok == json.Delim('}') {
			return nil
		}
		key, ok := tok.(string)
		if !ok {
			return malformed("the body is not valid JSON")
		}
		field := key
		if path != "" {
			field = path + "." + key
		}
		if allowed != nil && !allowed[key] {
			return malformed("unknown field %q", truncate(field, 64))
		}
		if seen[key] {
			return malformed("duplicate field %q", truncate(field, 64))
		}
		seen[key] = true
		var inner map[string]bool
		if allowed != nil && field == "sender" {
			inner = senderKeys
		}
		if err := walkValue(dec, field, inner, depth); err != nil {
			return err
		}
	}
}

func walkValue(dec *json.Decoder, path string, allowed map[string]bool, depth int) error {
	if depth >= maxDepth {
		return malformed("the JSON is nested more than %d deep", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return malformed("the body is not valid JSON: %v", err)
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, path, allowed, depth+1)
	case json.Delim('['):
		for dec.More() {
			if err := walkValue(dec, path+"[]", nil, depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return malformed("the body is not valid JSON: %v", err)
		}
	}
	return nil
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
	return s[:n] + "…"
}

// ReplyChat words the answer to a command: the message to show in the
// conversation (see Message). A command the grammar rejected gets an
// explanation and the grammar; help gets the grammar; a failure gets its
// message; a call gets a sentence, its application/voip-link part and the
// call object.
func (a *App) ReplyChat(_ context.Context, req calls.ChatRequest, out calls.ChatOutcome) (calls.WebhookReply, error) {
	msg := replyMessage(req, out)
	body, err := json.Marshal(msg)
	if err != nil {
		return calls.WebhookReply{}, err
	}
	return calls.WebhookReply{Status: http.StatusOK, ContentType: "application/json", Body: body}, nil
}

func replyMessage(req calls.ChatRequest, out calls.ChatOutcome) Message {
	if p, ok := req.Private.(*pending); ok && req.Command == nil && p.commandErr != nil {
		return textMessage("That is not a command I know: " + reason(p.commandErr) + ".\n\n" + HelpText)
	}
	if out.Err != nil {
		return textMessage("Sorry, that did not work: " + reason(out.Err) + ".")
	}
	if req.Command == nil || req.Command.Kind == calls.CommandHelp || out.Call.ID == "" {
		return textMessage(HelpText)
	}
	c := out.Call
	msg := Message{
		Parts:       []Part{{MIMEType: MIMEText, Body: callSentence(req.Command.Kind, out)}},
		Call:        newCallView(c),
		Version:     c.Version,
		PersonalURL: out.PersonalURL,
	}
	if out.JoinURL != "" {
		msg.Parts = append(msg.Parts, Part{MIMEType: MIMEVoIPLink, Body: out.JoinURL})
	}
	return msg
}

func textMessage(s string) Message { return Message{Parts: []Part{{MIMEType: MIMEText, Body: s}}} }

// reason is an error's message without the sentinel's prefix, which says
// nothing to a person ("invalid input: …").
func reason(err error) string {
	s := err.Error()
	for _, sentinel := range []error{calls.ErrInvalidInput, calls.ErrForbidden, calls.ErrNotFound} {
		if rest, ok := strings.CutPrefix(s, sentinel.Error()+": "); ok {
			s = rest
			break
		}
	}
	return strings.TrimRight(s, ".")
}

func callSentence(kind calls.CommandKind, out calls.ChatOutcome) string {
	c := out.Call
	media := "video"
	if c.Type == calls.TypeAudio {
		media = "audio"
	}
	article := "a"
	if media == "audio" {
		article = "an"
	}
	title := ""
	if c.Title != "" {
		title = ": " + c.Title
	}
	switch {
	case kind == calls.CommandEnd || c.State.Terminal():
		return fmt.Sprintf("The %s call has ended%s.", media, title)
	case out.Created:
		return fmt.Sprintf("Started %s %s call%s.", article, media, title)
	}
	return fmt.Sprintf("There is already %s %s call here%s.", article, media, title)
}

// HelpText is the grammar, as shown for `/call help` and after a command
// the grammar rejected.
const HelpText = "Calls in this conversation:\n" +
	"/call [new] [audio|video] [@person …] [title …]  start a call (video unless you say audio), or show the one already here\n" +
	"/call new …  start another call even if one is live\n" +
	"/call end  end the call here\n" +
	"/call help  show this help"
