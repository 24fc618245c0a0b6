package discord

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// Response is an interaction response as callgate sends it. Empty fields
// are left out (discordgo's InteractionResponseData would send nulls).
type Response struct {
	Type discordgo.InteractionResponseType `json:"type"`
	Data *ResponseData                     `json:"data,omitempty"`
}

// ResponseData is a response's message.
type ResponseData struct {
	Content         string                            `json:"content,omitempty"`
	Embeds          []*discordgo.MessageEmbed         `json:"embeds,omitempty"`
	Components      []discordgo.MessageComponent      `json:"components,omitempty"`
	AllowedMentions *discordgo.MessageAllowedMentions `json:"allowed_mentions,omitempty"`
	Flags           discordgo.MessageFlags            `json:"flags,omitempty"`
}

// noMentions lets no mention in a message ping anyone.
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}

// maxContent is Discord's bound on a message's content.
const maxContent = 2000

// ReplyChat words the outcome as the interaction response: ephemeral
// (flags 64) words for the person, in their Discord locale, or a deferred
// update (type 6) for End, Accept and Decline clicks that worked (the card
// itself shows the change, through PostCard).
func (a *App) ReplyChat(_ context.Context, req calls.ChatRequest, out calls.ChatOutcome) (calls.WebhookReply, error) {
	return calls.WebhookReply{Status: http.StatusOK, ContentType: "application/json", Body: jsonBody(a.Response(req, out))}, nil
}

// Response is the interaction response ReplyChat sends.
func (a *App) Response(req calls.ChatRequest, out calls.ChatOutcome) Response {
	p, _ := req.Private.(*pending)
	if p == nil {
		p = &pending{}
	}
	lang := a.language(p.Locale)
	t := func(key string) string { return a.tpl.Text(lang, key) }
	help := t("card.help")
	switch {
	case p.commandErr != nil:
		return ephemeral(Escape(reason(p.commandErr)) + "\n" + help)
	case p.unknown || (req.Command == nil && req.Action == nil):
		return ephemeral(help)
	case out.Err != nil:
		return ephemeral(a.errorText(lang, req, out.Err))
	}
	if act := req.Action; act != nil {
		switch act.Kind {
		case "accept":
			if out.PersonalURL != "" {
				return a.personalLink(lang, "", out.PersonalURL)
			}
			return Response{Type: discordgo.InteractionResponseDeferredMessageUpdate}
		case "join":
			if out.PersonalURL == "" || out.Call.State.Terminal() {
				return ephemeral(t("card.ended_already"))
			}
			return a.personalLink(lang, "", out.PersonalURL)
		default:
			// The card's new state is the answer; the outbox edits it.
			return Response{Type: discordgo.InteractionResponseDeferredMessageUpdate}
		}
	}
	cmd := req.Command
	var notes []string
	for _, k := range out.Notices {
		notes = append(notes, Escape(t(k)))
	}
	switch cmd.Kind {
	case calls.CommandHelp:
		return ephemeral(help)
	case calls.CommandEnd:
		return ephemeral(callLine(a.tpl, lang, out.Call))
	case calls.CommandRing:
		return ephemeral(strings.Join(notes, "\n"))
	}
	if out.Call.ID == "" {
		if len(notes) > 0 {
			return ephemeral(strings.Join(notes, "\n"))
		}
		return ephemeral(help)
	}
	head := callLine(a.tpl, lang, out.Call)
	if !out.Created && !out.Call.State.Terminal() {
		head = t("card.live_call_here") + "\n" + head
	}
	if len(notes) > 0 {
		head += "\n" + strings.Join(notes, "\n")
	}
	if out.PersonalURL == "" {
		return ephemeral(head)
	}
	return a.personalLink(lang, head, out.PersonalURL)
}

// personalLink is the ephemeral answer carrying a person's own join link,
// in the text and as a link button.
func (a *App) personalLink(lang, head, link string) Response {
	text := a.tpl.Text(lang, "card.personal_link") + "\n" + link
	if head != "" {
		text = head + "\n" + text
	}
	r := ephemeral(text)
	r.Data.Components = []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
		discordgo.Button{Label: a.tpl.Text(lang, "card.action.join"), Style: discordgo.LinkButton, URL: link},
	}}}
	return r
}

// callLine is "**Title** · State" for a reply.
func callLine(tpl *templates.Set, lang string, c calls.Call) string {
	title := Escape(c.Title)
	if title == "" {
		title = tpl.Text(lang, "card.title."+string(c.Type))
		if c.Type == "" {
			title = tpl.Text(lang, "card.title.video")
		}
	}
	return "**" + title + "** · " + tpl.Text(lang, "card.state."+string(c.State))
}

// errorText words a domain error for the person.
func (a *App) errorText(lang string, req calls.ChatRequest, err error) string {
	ending := (req.Command != nil && req.Command.Kind == calls.CommandEnd) || (req.Action != nil && req.Action.Kind == "end")
	switch {
	case errors.Is(err, calls.ErrForbidden) && ending:
		return a.tpl.Text(lang, "card.not_owner")
	case errors.Is(err, calls.ErrCallEnded):
		return a.tpl.Text(lang, "card.ended_already")
	}
	return Escape(reason(err))
}

func ephemeral(content string) Response {
	return Response{
		Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &ResponseData{Content: truncate(content, maxContent-4), AllowedMentions: noMentions(), Flags: discordgo.MessageFlagsEphemeral},
	}
}

// language picks the reply language from a Discord locale ("fr",
// "en-US", "es-ES", "es-419"), else the default.
func (a *App) language(locale string) string {
	base, _, _ := strings.Cut(strings.ToLower(locale), "-")
	if templates.IsBuiltinLang(base) {
		return base
	}
	return a.lang
}

// reason is an error's message without the sentinel's prefix, which says
// nothing to a person ("invalid input: …"), capitalised.
func reason(err error) string {
	s := err.Error()
	for _, sentinel := range []error{calls.ErrInvalidInput, calls.ErrForbidden, calls.ErrNotFound, calls.ErrUnknownProvider, calls.ErrCallEnded, calls.ErrInvalidTransition, calls.ErrProvider, calls.ErrRoomNotReady, calls.ErrInvalidID} {
		if rest, ok := strings.CutPrefix(s, sentinel.Error()+": "); ok {
			s = rest
			break
		}
	}
	s = strings.TrimRight(s, ".")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:] + "."
}
