package streamchat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// AttachmentType is the type of the attachment holding the call.
const AttachmentType = "call"

// CallView is the call object stored in the message attachment, the
// channel's `call` field and the custom events.
type CallView struct {
	ID           string            `json:"id"`
	Type         string            `json:"type"`
	State        string            `json:"state"`
	Live         bool              `json:"live"`
	Provider     string            `json:"provider,omitempty"`
	Title        string            `json:"title,omitempty"`
	JoinURL      string            `json:"join_url,omitempty"`
	CreatedBy    string            `json:"created_by,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
	EndedAt      *time.Time        `json:"ended_at,omitempty"`
	Participants []ParticipantView `json:"participants"`
	Recordings   []RecordingView   `json:"recordings,omitempty"`
	// Version grows with every change: keep the highest seen.
	Version int64 `json:"version"`
}

// ParticipantView is one person in the call now.
type ParticipantView struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	JoinedAt time.Time `json:"joined_at"`
}

// RecordingView links a recording or transcript.
type RecordingView struct {
	Kind string `json:"kind"`
	URL  string `json:"url"`
}

func (a *App) callView(c calls.Call, joinURL string) *CallView {
	v := &CallView{
		ID: c.ID, Type: string(c.Type), State: string(c.State), Live: !c.State.Terminal(), Provider: c.Provider,
		Title: c.Title, CreatedAt: c.CreatedAt.UTC(), Participants: []ParticipantView{}, Version: c.Version,
	}
	if v.Live {
		v.JoinURL = joinURL
	}
	v.CreatedBy, _ = strings.CutPrefix(c.CreatedBy, a.name+":")
	if c.EndedAt != nil {
		t := c.EndedAt.UTC()
		v.EndedAt = &t
	}
	for _, p := range c.Participants {
		id, _ := strings.CutPrefix(p.Identity, a.name+":")
		v.Participants = append(v.Participants, ParticipantView{ID: id, Name: p.Name, JoinedAt: p.JoinedAt.UTC()})
	}
	for _, r := range c.Recordings {
		if templates.SafeURL(r.URL) {
			v.Recordings = append(v.Recordings, RecordingView{Kind: r.Kind, URL: r.URL})
		}
	}
	return v
}

// render lays a card out as a message: markdown text (every user value
// escaped) and the call attachment (plain text, mentions defused).
func (a *App) render(c calls.Call, joinURL, lang string, names map[string]string) (string, Attachment) {
	card := a.card(c, joinURL, lang, names)
	lines := []string{"**" + templates.EscapeMarkdown(card.Title) + "** · " + templates.EscapeMarkdown(card.StateText)}
	if card.Subtitle != "" {
		lines = append(lines, templates.EscapeMarkdown(card.Subtitle))
	}
	att := Attachment{Type: AttachmentType, Title: templates.PlainLine(card.Title), Call: a.callView(c, joinURL)}
	if card.Live {
		lines = append(lines, templates.EscapeMarkdown(card.PeopleText))
		if card.DurationText != "" {
			lines = append(lines, templates.EscapeMarkdown(card.DurationText))
		}
		att.TitleLink = joinURL
		att.Text = templates.PlainLine(card.PeopleText)
	} else {
		lines = append(lines, templates.EscapeMarkdown(card.Summary))
		att.Text = templates.PlainLine(card.Summary)
	}
	for _, r := range card.Recordings {
		if templates.SafeURL(r.URL) {
			lines = append(lines, "["+templates.EscapeMarkdown(r.Label)+"]("+templates.MarkdownURL(r.URL)+")")
		}
	}
	att.Fallback = templates.PlainLine(card.Title + " · " + card.StateText)
	for _, act := range card.Actions {
		style := "default"
		if act.Style == "primary" {
			style = "primary"
		}
		att.Actions = append(att.Actions, Action{Name: ActionField, Text: act.Label, Style: style, Type: "button", Value: act.ID + ":" + c.ID})
	}
	return strings.Join(lines, "\n"), att
}

// CardMessageID is the id of the card message of a call in a channel:
// deterministic, so a repeated first post finds the message it made.
func CardMessageID(callID string, s calls.Surface) string {
	sum := sha256.Sum256([]byte(s.Key().String()))
	return "callgate-" + callID + "-" + hex.EncodeToString(sum[:4])
}

// PostCard sends the card as the bot's message (first delivery) or
// partially updates it, then keeps the channel's call field and sends the
// custom event when those are switched on.
func (a *App) PostCard(ctx context.Context, d calls.CardDelivery) (string, error) {
	if _, direct := d.Surface.DirectUser(); direct {
		// A "dm:" surface rings one person by direct message: not
		// applicable here (Stream Chat has no direct message a server can open for a person outside a channel the app set up; people mentioned are members of the call and see it in the channel (and through custom events)), so there is nothing to deliver.
		return "", nil
	}
	typ, id, ok := strings.Cut(d.Surface.Channel, ":")
	if !ok || typ == "" || id == "" {
		return "", calls.Permanentf("the surface's channel %q is not \"<type>:<id>\"", truncate(d.Surface.Channel, 80))
	}
	text, att := a.render(d.Call, d.JoinURL, a.locale, nil)
	ref := d.Surface.Delivery.MessageRef
	first := d.Surface.Delivery.Shown == 0
	update := func(id string) error {
		return a.client.PartialUpdateMessage(ctx, id, map[string]any{"text": text, "attachments": []Attachment{att}}, nil, a.bot)
	}
	switch {
	case ref != "" && first:
		// The command's own message is the card. Stream stores it only
		// once the command is answered, so a first update may find it
		// missing for a moment: that is worth a retry, not a failure.
		if err := update(ref); err != nil {
			if httpx.Status(err) == http.StatusNotFound {
				return "", calls.Temporary(fmt.Errorf("stream: the command's message %s is not stored yet: %w", truncate(ref, 64), err), time.Second)
			}
			return "", err
		}
	case ref == "":
		// No message to adopt (a call shown here over the REST API): the
		// bot posts the card.
		ref = CardMessageID(d.Call.ID, d.Surface)
		_, err := a.client.SendMessage(ctx, typ, id, MessageRequest{ID: ref, Text: text, Attachments: []Attachment{att}, UserID: a.bot})
		if alreadyExists(err) {
			err = update(ref)
		}
		if err != nil {
			return "", err
		}
	default:
		if err := update(ref); err != nil {
			return "", err
		}
	}
	if a.channelField {
		if err := a.client.PartialUpdateChannel(ctx, typ, id, map[string]any{"call": att.Call}, nil); err != nil {
			return "", err
		}
	}
	if a.events {
		event := "call.updated"
		switch {
		case d.Call.State.Terminal():
			event = "call.ended"
		case first:
			event = "call.created"
		}
		if err := a.client.SendEvent(ctx, typ, id, map[string]any{"type": event, "user_id": a.bot, "call": att.Call}); err != nil {
			return "", err
		}
	}
	return ref, nil
}
