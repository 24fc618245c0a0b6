package slack

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/slack-go/slack"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// Ephemeral is an answer only the person who typed or clicked sees: the
// body of a slash command's answer, or what is POSTed to a response_url.
type Ephemeral struct {
	ResponseType    string        `json:"response_type"`
	ReplaceOriginal *bool         `json:"replace_original,omitempty"`
	Text            string        `json:"text"`
	Blocks          []slack.Block `json:"blocks,omitempty"`
}

// ReplyChat answers a parsed request. A slash command gets its ephemeral
// answer as the body of the 200; a click is acked with an empty 200 and
// its answer is POSTed to the payload's response_url in the background
// (Slack ignores the body of an interaction ack, and wants the ack within
// 3 s whatever happens next).
func (a *App) ReplyChat(ctx context.Context, req calls.ChatRequest, out calls.ChatOutcome) (calls.WebhookReply, error) {
	p, _ := req.Private.(*pending)
	if p == nil {
		return *ack, nil
	}
	msg := a.answer(req, p, out)
	if p.endpoint == PathInteractions {
		if msg != nil {
			a.respondLater(ctx, p.responseURL, *msg)
		}
		return *ack, nil
	}
	if msg == nil {
		return *ack, nil
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return calls.WebhookReply{}, err
	}
	return calls.WebhookReply{Status: http.StatusOK, ContentType: "application/json", Body: body}, nil
}

// lang is the language to answer a person in: the one Slack reports for
// them, when it does and it is one we have, else default_locale.
func (a *App) langFor(locale string) string {
	base, _, _ := strings.Cut(strings.ToLower(strings.ReplaceAll(locale, "_", "-")), "-")
	if templates.IsBuiltinLang(base) {
		return base
	}
	return a.lang
}

// answer words the outcome for the person; nil means nothing to say (a
// click whose effect the card itself shows).
func (a *App) answer(req calls.ChatRequest, p *pending, out calls.ChatOutcome) *Ephemeral {
	lang := a.langFor(p.locale)
	t := func(key string) string { return a.texts.Text(lang, key) }
	if p.commandErr != nil {
		return ephemeral(Escape(reason(p.commandErr)) + ".\n" + Escape(t("card.help")))
	}
	notes := a.notices(lang, out.Notices)
	if out.Err != nil {
		if notes != "" {
			return ephemeral(Escape(reason(out.Err)) + ".\n" + notes)
		}
		switch {
		case errors.Is(out.Err, calls.ErrForbidden) && isEnd(req):
			return ephemeral(Escape(t("card.not_owner")))
		case errors.Is(out.Err, calls.ErrCallEnded):
			return ephemeral(Escape(t("card.ended_already")))
		}
		return ephemeral(Escape(reason(out.Err)) + ".")
	}
	if req.Action != nil {
		switch {
		case out.PersonalURL != "":
			return a.personalLink(lang, "", out.PersonalURL)
		case req.Action.Kind == ActionJoin && out.Call.State.Terminal():
			return ephemeral(Escape(t("card.ended_already")))
		}
		return nil // the card shows what the click did
	}
	if out.Call.ID == "" && notes != "" {
		return ephemeral(notes)
	}
	if req.Command == nil || req.Command.Kind == calls.CommandHelp || out.Call.ID == "" {
		return ephemeral(Escape(t("card.help")))
	}
	title := out.Call.Title
	if title == "" {
		title = t("card.title." + string(out.Call.Type))
	}
	switch {
	case req.Command.Kind == calls.CommandEnd || out.Call.State.Terminal():
		return ephemeral("*" + Escape(title) + "*: " + Escape(t("card.state."+string(out.Call.State))))
	case !out.Created:
		return a.personalLink(lang, Escape(t("card.live_call_here")), out.PersonalURL)
	}
	lead := "*" + Escape(title) + "*: " + Escape(t("card.state."+string(out.Call.State)))
	if notes != "" {
		lead += "\n" + notes
	}
	return a.personalLink(lang, lead, out.PersonalURL)
}

// notices words the outcome's notices (template keys), escaped.
func (a *App) notices(lang string, keys []string) string {
	var out []string
	for _, k := range keys {
		out = append(out, Escape(a.texts.Text(lang, k)))
	}
	return strings.Join(out, "\n")
}

func isEnd(req calls.ChatRequest) bool {
	return (req.Action != nil && req.Action.Kind == ActionEnd) || (req.Command != nil && req.Command.Kind == calls.CommandEnd)
}

// personalLink is lead (mrkdwn, escaped) followed by the person's own link
// as a button, when there is one.
func (a *App) personalLink(lang, lead, personal string) *Ephemeral {
	if personal == "" || len(personal) > maxURL {
		return ephemeral(lead)
	}
	text := a.texts.Text(lang, "card.personal_link")
	if lead != "" {
		text = lead + "\n" + Escape(text)
	} else {
		text = Escape(text)
	}
	btn := slack.NewButtonBlockElement(actionPersonalLink, "", plain(a.texts.Text(lang, "card.action.join"))).
		WithURL(personal).WithStyle(slack.StylePrimary)
	return &Ephemeral{
		ResponseType: "ephemeral",
		Text:         text,
		Blocks: []slack.Block{
			slack.NewSectionBlock(mrkdwn(text), nil, nil),
			slack.NewActionBlock("callgate_personal", btn),
		},
	}
}

func ephemeral(text string) *Ephemeral {
	return &Ephemeral{ResponseType: "ephemeral", Text: text, Blocks: []slack.Block{slack.NewSectionBlock(mrkdwn(text), nil, nil)}}
}

// reason is an error's message without the sentinel's prefix.
func reason(err error) string {
	s := err.Error()
	for _, sentinel := range []error{calls.ErrInvalidInput, calls.ErrForbidden, calls.ErrNotFound, calls.ErrCallEnded, calls.ErrInvalidTransition, calls.ErrUnknownProvider} {
		if rest, ok := strings.CutPrefix(s, sentinel.Error()+": "); ok {
			s = rest
			break
		}
	}
	s = strings.TrimRight(s, ".")
	if s != "" {
		s = strings.ToUpper(s[:1]) + s[1:]
	}
	return s
}

// respondTimeout bounds posting one ephemeral answer.
const respondTimeout = 10 * time.Second

// respondLater POSTs msg to the response_url after the ack, as an
// ephemeral message that leaves the card alone (replace_original false).
func (a *App) respondLater(ctx context.Context, responseURL string, msg Ephemeral) {
	u, err := url.Parse(responseURL)
	if err != nil || !a.responseURLAllowed(u) {
		a.log.WarnContext(ctx, "slack interaction without a usable response_url; the answer is dropped")
		return
	}
	no := false
	msg.ReplaceOriginal = &no
	body, err := json.Marshal(msg)
	if err != nil {
		return
	}
	a.inflight.Add(1)
	go func() {
		defer a.inflight.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), respondTimeout)
		defer cancel()
		req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, responseURL, body)
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		if _, _, err := httpx.Do(a.responder, req, "slack response_url"); err != nil {
			a.log.WarnContext(ctx, "slack ephemeral answer not delivered", "err", err)
		}
	}()
}
