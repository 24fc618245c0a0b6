package mattermost

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// Attachment is a Mattermost message attachment (Slack's legacy format).
type Attachment struct {
	Fallback  string   `json:"fallback"`
	Color     string   `json:"color"`
	Title     string   `json:"title"`
	TitleLink string   `json:"title_link,omitempty"`
	Text      string   `json:"text"`
	Fields    []Field  `json:"fields,omitempty"`
	Actions   []Action `json:"actions,omitempty"`
}

// Field is one attachment field.
type Field struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

// Action is an integration-action button.
type Action struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Type        string      `json:"type"`
	Style       string      `json:"style,omitempty"`
	Integration Integration `json:"integration"`
}

// Integration is where a click is POSTed and the context it carries.
type Integration struct {
	URL     string            `json:"url"`
	Context map[string]string `json:"context"`
}

// Card colours.
const (
	ColorLive  = "#1E8E3E"
	ColorEnded = "#8A8A8A"
)

func (a *App) card(c calls.Call, joinURL string, names map[string]string) templates.Card {
	all := map[string]string{}
	for _, p := range c.Participants {
		if p.Name != "" {
			all[p.Identity] = p.Name
		}
	}
	for k, v := range names {
		if v != "" && all[k] == "" {
			all[k] = v
		}
	}
	return a.templates.Card(templates.CardInput{Call: c, Names: all, Recordings: c.Recordings, JoinURL: joinURL, Lang: a.locale, Now: a.now()})
}

// render lays the card out as one attachment; every user value is escaped.
func (a *App) render(c calls.Call, joinURL, channelID string, names map[string]string) Attachment {
	card := a.card(c, joinURL, names)
	att := Attachment{Fallback: escape(card.Title + " · " + card.StateText), Color: ColorLive, Title: escape(card.Title)}
	var lines []string
	if card.Subtitle != "" {
		lines = append(lines, escape(card.Subtitle))
	}
	if card.Live {
		att.TitleLink = joinURL
		lines = append(lines, escape(card.PeopleText))
		att.Fields = append(att.Fields, Field{Title: "", Value: escape(card.StateText), Short: true})
		if card.DurationText != "" {
			att.Fields = append(att.Fields, Field{Title: "", Value: escape(card.DurationText), Short: true})
		}
	} else {
		att.Color = ColorEnded
		lines = append(lines, "**"+escape(card.Summary)+"**")
	}
	for _, r := range card.Recordings {
		if templates.SafeURL(r.URL) {
			lines = append(lines, "["+escape(r.Label)+"]("+templates.MarkdownURL(r.URL)+")")
		}
	}
	att.Text = strings.Join(lines, "\n")
	for _, act := range card.Actions {
		style := "default"
		switch act.Style {
		case "primary":
			style = "primary"
		case "danger":
			style = "danger"
		}
		att.Actions = append(att.Actions, Action{
			ID: act.ID, Name: act.Label, Type: "button", Style: style,
			Integration: Integration{URL: a.actionsURL, Context: map[string]string{
				"action": act.ID, "call_id": c.ID, "sig": ActionSignature(a.actionSecret, act.ID, c.ID, channelID),
			}},
		})
	}
	return att
}

// PostCard creates the bot's card post (POST /api/v4/posts) or patches it
// (PUT /api/v4/posts/{id}/patch).
func (a *App) PostCard(ctx context.Context, d calls.CardDelivery) (string, error) {
	if user, ok := d.Surface.DirectUser(); ok {
		return a.postDirect(ctx, d, user)
	}
	if checkID("channel", d.Surface.Channel, true) != nil {
		return "", calls.Permanentf("the surface has no Mattermost channel id")
	}
	names := map[string]string{}
	if id, ok := strings.CutPrefix(d.Call.CreatedBy, a.name+":"); ok {
		if n := a.userName(ctx, id); n != "" {
			names[d.Call.CreatedBy] = n
		}
	}
	props := map[string]any{"attachments": []Attachment{a.render(d.Call, d.JoinURL, d.Surface.Channel, names)}}
	if ref := d.Surface.Delivery.MessageRef; ref != "" {
		_, err := a.do(ctx, http.MethodPut, "/api/v4/posts/"+url.PathEscape(ref)+"/patch", map[string]any{"message": "", "props": props}, "Mattermost patch post")
		if err != nil {
			return "", err
		}
		return ref, nil
	}
	answer, err := a.do(ctx, http.MethodPost, "/api/v4/posts", map[string]any{"channel_id": d.Surface.Channel, "message": "", "props": props}, "Mattermost create post")
	if err != nil {
		return "", err
	}
	var post struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(answer, &post) != nil || post.ID == "" {
		return "", calls.Permanentf("Mattermost create post: the answer holds no post id")
	}
	return post.ID, nil
}

// postDirect rings one person: the bot's direct channel with them is
// opened (GET /api/v4/users/me once for the bot's id, then POST
// /api/v4/channels/direct [bot, user], which returns the existing channel),
// and the card is posted there, its buttons signed for that channel. The
// reference is "<channel>/<post>" so edits sign for the same channel.
func (a *App) postDirect(ctx context.Context, d calls.CardDelivery, user string) (string, error) {
	if checkID("user", user, true) != nil {
		return "", calls.Permanentf("%q is not a Mattermost user id", truncate(user, 32))
	}
	channel, post, _ := strings.Cut(d.Surface.Delivery.MessageRef, "/")
	if channel == "" || post == "" {
		bot, err := a.botID(ctx)
		if err != nil {
			return "", err
		}
		answer, err := a.do(ctx, http.MethodPost, "/api/v4/channels/direct", []string{bot, user}, "Mattermost open direct channel")
		if err != nil {
			return "", err
		}
		var ch struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(answer, &ch) != nil || ch.ID == "" {
			return "", calls.Permanentf("Mattermost open direct channel: the answer holds no channel id")
		}
		direct := d
		direct.Surface.Channel = ch.ID
		direct.Surface.Delivery.MessageRef = ""
		id, err := a.PostCard(ctx, direct)
		if err != nil {
			return "", err
		}
		return ch.ID + "/" + id, nil
	}
	direct := d
	direct.Surface.Channel, direct.Surface.Delivery.MessageRef = channel, post
	if _, err := a.PostCard(ctx, direct); err != nil {
		return "", err
	}
	return channel + "/" + post, nil
}

// botID is the bot account's user id (GET /api/v4/users/me), looked up once.
func (a *App) botID(ctx context.Context) (string, error) {
	a.mu.Lock()
	id := a.bot
	a.mu.Unlock()
	if id != "" {
		return id, nil
	}
	answer, err := a.do(ctx, http.MethodGet, "/api/v4/users/me", nil, "Mattermost get the bot user")
	if err != nil {
		return "", err
	}
	var me struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(answer, &me) != nil || me.ID == "" {
		return "", calls.Permanentf("Mattermost get the bot user: the answer holds no id")
	}
	a.mu.Lock()
	a.bot = me.ID
	a.mu.Unlock()
	return me.ID, nil
}

// IsMember tells whether a user still belongs to the surface's channel:
// GET /api/v4/channels/{channel}/members/{user} (404: not a member).
func (a *App) IsMember(ctx context.Context, s calls.Surface, user string) (bool, error) {
	if checkID("channel", s.Channel, true) != nil || checkID("user", user, true) != nil {
		return false, nil
	}
	_, err := a.do(ctx, http.MethodGet, "/api/v4/channels/"+url.PathEscape(s.Channel)+"/members/"+url.PathEscape(user), nil, "Mattermost get channel member")
	var perm *calls.PermanentError
	if errors.As(err, &perm) && strings.Contains(perm.Error(), "404") {
		return false, nil
	}
	return err == nil, err
}

// maxNames bounds the username cache.
const maxNames = 1024

// userName is a user's username, looked up once; "" when unknown.
func (a *App) userName(ctx context.Context, id string) string {
	a.mu.Lock()
	n, ok := a.names[id]
	a.mu.Unlock()
	if ok {
		return n
	}
	answer, err := a.do(ctx, http.MethodGet, "/api/v4/users/"+url.PathEscape(id), nil, "Mattermost get user")
	if err != nil {
		return ""
	}
	var u struct {
		Username string `json:"username"`
	}
	if json.Unmarshal(answer, &u) != nil || u.Username == "" {
		return ""
	}
	a.mu.Lock()
	if len(a.names) >= maxNames {
		clear(a.names)
	}
	a.names[id] = u.Username
	a.mu.Unlock()
	return u.Username
}

func (a *App) do(ctx context.Context, method, path string, in any, what string) ([]byte, error) {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, calls.Permanent("cannot encode the request", err)
		}
		body = b
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return nil, calls.Permanentf("%s: invalid api_url", what)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+a.botToken)
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	answer, _, err := httpx.Do(a.http, req, what)
	return answer, err
}

// escape makes user text render as written in Mattermost's markdown, ':'
// included (it starts emoji), with no mention coming of it.
func escape(s string) string { return templates.EscapeMarkdown(s, ':') }
