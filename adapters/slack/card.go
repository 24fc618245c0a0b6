package slack

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/templates"
)

// Block Kit limits.
const (
	maxHeader     = 150
	maxButtonText = 75
	maxURL        = 3000
	maxSection    = 3000
)

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Escape writes user text for Slack's mrkdwn and text fields: the three
// characters Slack gives meaning to (&, <, >) become entities, so no user
// text can form <!channel>, <!here>, <@U…> or <url|label>; control
// characters other than newline become spaces.
func Escape(s string) string {
	s = strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0xE000 && r <= 0xE0FF) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	return escaper.Replace(s)
}

// mrkdwn is a mrkdwn text object with verbatim set: Slack does not
// auto-link URLs, channel names or @words in it.
func mrkdwn(text string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, truncate(text, maxSection-10), false, true)
}

func plain(text string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, text, false, false)
}

// CardBlocks lays out a card in Block Kit. callID is the value of the
// buttons; slackCall, when set, is the native call (Slack's R… id) shown
// as a call block first, which draws its own Join button.
//
// names holds, for each placeholder the card's words may carry (see
// cardInput), what to put there, already in Slack's syntax.
func CardBlocks(card templates.Card, callID, slackCall string, names map[string]string) ([]slack.Block, string) {
	fill := strings.NewReplacer(flatten(names)...)
	// The card's sentences are the templates' words around placeholders:
	// escaped as text, then the placeholders replaced by the people.
	text := func(s string) string { return fill.Replace(escaper.Replace(s)) }
	emoji := ":video_camera:"
	if card.Type == calls.TypeAudio {
		emoji = ":telephone_receiver:"
	}
	var blocks []slack.Block
	if slackCall != "" {
		blocks = append(blocks, slack.NewCallBlock(slackCall))
	} else {
		blocks = append(blocks, slack.NewHeaderBlock(plain(Escape(truncate(card.Title, maxHeader-10)))))
	}
	var lines []string
	if card.Live {
		first := emoji + " *" + Escape(card.StateText) + "*"
		if card.DurationText != "" {
			first += " · " + Escape(card.DurationText)
		}
		lines = append(lines, first)
		if card.Subtitle != "" {
			lines = append(lines, text(card.Subtitle))
		}
		lines = append(lines, text(card.PeopleText))
	} else {
		lines = append(lines, emoji+" *"+Escape(card.Summary)+"*")
		if card.Subtitle != "" {
			lines = append(lines, text(card.Subtitle))
		}
	}
	if slackCall != "" && card.Title != "" {
		lines = append([]string{"*" + Escape(card.Title) + "*"}, lines...)
	}
	blocks = append(blocks, slack.NewSectionBlock(mrkdwn(strings.Join(lines, "\n")), nil, nil))
	var links []string
	for _, r := range card.Recordings {
		if u := linkURL(r.URL); u != "" {
			links = append(links, "<"+u+"|"+Escape(r.Label)+">")
		}
	}
	if len(links) > 0 {
		blocks = append(blocks, slack.NewContextBlock("callgate_recordings", mrkdwn(strings.Join(links, " · "))))
	}
	var buttons []slack.BlockElement
	for _, act := range card.Actions {
		if act.ID == ActionJoin && (slackCall != "" || act.URL == "" || len(act.URL) > maxURL) {
			continue // the call block has its own Join; a link-less Join is pointless
		}
		b := slack.NewButtonBlockElement(act.ID, callID, plain(Escape(truncate(act.Label, maxButtonText-10))))
		if act.ID == ActionJoin {
			b = b.WithURL(act.URL)
		}
		switch act.Style {
		case "primary":
			b = b.WithStyle(slack.StylePrimary)
		case "danger":
			b = b.WithStyle(slack.StyleDanger)
		}
		buttons = append(buttons, b)
	}
	if len(buttons) > 0 {
		blocks = append(blocks, slack.NewActionBlock("callgate_actions", buttons...))
	}
	fallback := Escape(card.Title) + " · " + Escape(card.StateText)
	if !card.Live {
		fallback = Escape(card.Title) + " · " + Escape(card.Summary)
	}
	return blocks, fallback
}

func flatten(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, 0, 2*len(m))
	for _, k := range keys {
		out = append(out, k, m[k])
	}
	return out
}

// linkURL is an http(s) URL made safe inside <url|label>: & escaped, and
// the characters that end the link (|, <, >) percent-encoded. Anything
// else gives "".
func linkURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(raw) > maxURL {
		return ""
	}
	s := strings.NewReplacer("|", "%7C", "<", "%3C", ">", "%3E", " ", "%20").Replace(u.String())
	return strings.ReplaceAll(s, "&", "&amp;")
}

// placeholder marks where a person's name goes in the card's words; the
// characters are from the Private Use Area, which Escape removes from any
// text, so only the card input can hold them.
func placeholder(i int) string { return "\uE000" + strconv.Itoa(i) + "\uE001" }

// cardInput is the template input of a delivery, with every person given
// as a placeholder, and what each placeholder stands for: a <@U…> mention
// for people the gateway knows as Slack users of this chat, else their
// escaped name.
func (a *App) cardInput(d calls.CardDelivery) (templates.CardInput, map[string]string) {
	in := templates.CardInput{
		Call: d.Call, Names: map[string]string{}, Recordings: d.Call.Recordings,
		JoinURL: d.JoinURL, Lang: a.lang, Now: a.now(),
	}
	subst := map[string]string{}
	add := func(id, name string) {
		if id == "" {
			return
		}
		if _, done := in.Names[id]; done {
			return
		}
		ph := placeholder(len(subst))
		in.Names[id] = ph
		if u, ok := a.slackUser(id); ok {
			subst[ph] = "<@" + u + ">"
			return
		}
		if name == "" {
			name = id
		}
		subst[ph] = Escape(name)
	}
	add(d.Call.CreatedBy, "")
	for _, p := range d.Call.Participants {
		add(p.Identity, p.Name)
	}
	return in, subst
}

// slackUser tells whether a gateway user id ("<chat>:U123") is a Slack user
// of this chat, and which.
func (a *App) slackUser(id string) (string, bool) {
	u, ok := strings.CutPrefix(id, a.name+":")
	if !ok || !userIDPattern.MatchString(u) {
		return "", false
	}
	return u, true
}

// messageRef is where a card lives: "channel:ts", and in native mode
// "channel:ts:R…:roster" (roster: the participants Slack's call has, as
// base64url of their keys, so the next delivery can send the difference).
type messageRef struct {
	Channel, TS, CallID string
	Roster              []string
}

func parseRef(s string) (messageRef, error) {
	if s == "" {
		return messageRef{}, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) != 2 && len(parts) != 4 {
		return messageRef{}, fmt.Errorf("message reference %q is not channel:ts", truncate(s, 64))
	}
	r := messageRef{Channel: parts[0], TS: parts[1]}
	if len(parts) == 4 {
		r.CallID = parts[2]
		raw, err := base64.RawURLEncoding.DecodeString(parts[3])
		if err != nil {
			return messageRef{}, fmt.Errorf("message reference %q has an unreadable roster", truncate(s, 64))
		}
		if len(raw) > 0 {
			r.Roster = strings.Split(string(raw), "\n")
		}
	}
	return r, nil
}

func (r messageRef) String() string {
	s := r.Channel + ":" + r.TS
	if r.CallID != "" {
		s += ":" + r.CallID + ":" + base64.RawURLEncoding.EncodeToString([]byte(strings.Join(r.Roster, "\n")))
	}
	return s
}

// PostCard posts the call's card with chat.postMessage when the surface
// has no message yet, and edits it with chat.update after; the reference
// returned is "channel:ts" (native mode adds Slack's call id and roster).
// In native mode the call is also added to Slack's Calls API, its
// participants kept in step, and ended with its duration.
func (a *App) PostCard(ctx context.Context, d calls.CardDelivery) (string, error) {
	ref, err := parseRef(d.Surface.Delivery.MessageRef)
	if err != nil {
		return "", calls.Permanent("unusable Slack message reference", err)
	}
	if d.Surface.Channel == "" {
		return "", calls.Permanentf("the surface has no Slack channel")
	}
	token, err := a.token(ctx, d.Surface.Workspace)
	if err != nil {
		return "", err
	}
	api := slack.New(token, slack.OptionHTTPClient(a.api.StandardClient()), slack.OptionAPIURL(a.apiURL))
	creator, slackCreator := a.slackUser(d.Call.CreatedBy)
	// A "dm:U…" surface rings one person: the card is posted to their
	// user id, which Slack delivers as the app's direct message to them
	// (chat:write, im:write); Slack answers with the D… channel, kept in
	// the reference for the edits. Native calls are the channel's only.
	channel := d.Surface.Channel
	user, direct := d.Surface.DirectUser()
	if direct {
		if !userIDPattern.MatchString(user) {
			return "", calls.Permanentf("slack: %q is not a Slack user id", truncate(user, 32))
		}
		channel = user
	}
	native := a.native && !direct && slackCreator && d.JoinURL != "" && (ref.TS == "" || ref.CallID != "")
	in, names := a.cardInput(d)
	card := a.texts.Card(in)

	if native {
		if ref.CallID == "" {
			roster, users := a.roster(d.Call)
			if d.Call.State.Terminal() {
				roster, users = nil, nil
			}
			call, err := api.AddCallContext(ctx, slack.AddCallParameters{
				ExternalUniqueID: d.Call.ID, JoinURL: d.JoinURL, CreatedBy: creator,
				Title: truncate(d.Call.Title, 200), DateStart: slack.JSONTime(d.Call.CreatedAt.Unix()),
				Participants: users,
			})
			if err != nil {
				return "", a.apiError("calls.add", err)
			}
			ref.CallID, ref.Roster = call.ID, roster
		} else if err := a.syncRoster(ctx, api, &ref, d.Call); err != nil {
			return "", err
		}
	}
	blocks, fallback := CardBlocks(card, d.Call.ID, ref.CallID, names)
	opts := []slack.MsgOption{slack.MsgOptionText(fallback, false), slack.MsgOptionBlocks(blocks...)}
	if ref.TS == "" {
		opts = append(opts, slack.MsgOptionDisableLinkUnfurl(), slack.MsgOptionDisableMediaUnfurl())
		posted, ts, err := api.PostMessageContext(ctx, channel, opts...)
		if err != nil {
			if native && ref.CallID != "" {
				// The Slack call was made but no message shows it, and the
				// retry will make another: end this one so no orphan call
				// lingers in Slack (best effort; the error below is what
				// counts).
				endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				_ = api.EndCallContext(endCtx, ref.CallID, slack.EndCallParameters{})
				cancel()
			}
			return "", a.apiError("chat.postMessage", err)
		}
		if posted == "" {
			posted = channel
		}
		ref.Channel, ref.TS = posted, ts
	} else if _, _, _, err := api.UpdateMessageContext(ctx, ref.Channel, ref.TS, opts...); err != nil {
		return "", a.apiError("chat.update", err)
	}
	if native && d.Call.State.Terminal() {
		dur := time.Duration(0)
		if d.Call.EndedAt != nil {
			dur = max(d.Call.EndedAt.Sub(d.Call.CreatedAt), 0)
		}
		// After the message edit: a retry edits again (harmless) and ends
		// again; a call Slack already ended is not an error.
		if err := api.EndCallContext(ctx, ref.CallID, slack.EndCallParameters{Duration: dur.Truncate(time.Second)}); err != nil && slackCode(err) != "already_ended" {
			return "", a.apiError("calls.end", err)
		}
	}
	return ref.String(), nil
}

// IsMember tells whether a Slack user is still in the surface's channel,
// when check_membership is on (otherwise everyone is, as before):
// conversations.members, paged 1000 at a time and stopped at the first
// match. conversations.members was chosen over users.conversations: a
// card's channel is one list to read, where a person may be in thousands
// of channels, and both need the same scopes (channels:read,
// groups:read).
func (a *App) IsMember(ctx context.Context, s calls.Surface, user string) (bool, error) {
	if !a.membership {
		return true, nil
	}
	token, err := a.token(ctx, s.Workspace)
	if err != nil {
		return false, err
	}
	api := slack.New(token, slack.OptionHTTPClient(a.api.StandardClient()), slack.OptionAPIURL(a.apiURL))
	cursor := ""
	for range 100 {
		members, next, err := api.GetUsersInConversationContext(ctx, &slack.GetUsersInConversationParameters{ChannelID: s.Channel, Cursor: cursor, Limit: 1000})
		if err != nil {
			return false, a.apiError("conversations.members", err)
		}
		if slices.Contains(members, user) {
			return true, nil
		}
		if next == "" {
			return false, nil
		}
		cursor = next
	}
	return false, errors.New("slack conversations.members: too many pages")
}

// roster is who Slack's call should show: the call's participants, Slack
// users by their id and others as external users.
func (a *App) roster(c calls.Call) ([]string, []slack.CallParticipant) {
	var keys []string
	var users []slack.CallParticipant
	for _, p := range c.Participants {
		key, u := a.participant(p.Identity, p.Name)
		if slices.Contains(keys, key) {
			continue
		}
		keys = append(keys, key)
		users = append(users, u)
	}
	return keys, users
}

func (a *App) participant(identity, name string) (string, slack.CallParticipant) {
	if u, ok := a.slackUser(identity); ok {
		return "s:" + u, slack.CallParticipant{SlackID: u}
	}
	if name == "" {
		name = identity
	}
	return "e:" + identity, slack.CallParticipant{ExternalID: identity, DisplayName: truncate(name, 80)}
}

func fromKey(key string) slack.CallParticipant {
	if u, ok := strings.CutPrefix(key, "s:"); ok {
		return slack.CallParticipant{SlackID: u}
	}
	id := strings.TrimPrefix(key, "e:")
	return slack.CallParticipant{ExternalID: id, DisplayName: id}
}

// syncRoster sends Slack the difference between the roster it has (kept
// in the reference) and the call's.
func (a *App) syncRoster(ctx context.Context, api *slack.Client, ref *messageRef, c calls.Call) error {
	want, users := a.roster(c)
	var add, remove []slack.CallParticipant
	for i, k := range want {
		if !slices.Contains(ref.Roster, k) {
			add = append(add, users[i])
		}
	}
	for _, k := range ref.Roster {
		if !slices.Contains(want, k) {
			remove = append(remove, fromKey(k))
		}
	}
	if len(add) > 0 {
		if err := api.CallAddParticipantsContext(ctx, ref.CallID, add); err != nil {
			return a.apiError("calls.participants.add", err)
		}
	}
	if len(remove) > 0 {
		if err := api.CallRemoveParticipantsContext(ctx, ref.CallID, remove); err != nil {
			return a.apiError("calls.participants.remove", err)
		}
	}
	ref.Roster = want
	return nil
}

// permanentCodes are Slack error codes that repeating will not fix, with
// what an admin should do.
var permanentCodes = map[string]string{
	"channel_not_found":       "the channel does not exist or the app cannot see it",
	"not_in_channel":          "the bot is not in the channel: invite it (/invite @callgate) or use a public channel",
	"is_archived":             "the channel is archived",
	"invalid_auth":            "the token was refused: check bot_token, or install the app again",
	"not_authed":              "no token was sent: check bot_token or the installation",
	"account_inactive":        "the token's bot or workspace is deactivated: install the app again",
	"token_revoked":           "the token was revoked: install the app again",
	"token_expired":           "the token expired: install the app again (token rotation is not supported)",
	"missing_scope":           "the app lacks a scope: add it (see callgate slack manifest) and reinstall",
	"no_permission":           "the app lacks a permission in this workspace",
	"message_not_found":       "the card's message is gone (deleted?)",
	"cant_update_message":     "the card's message is not the bot's own",
	"invalid_blocks":          "Slack refused the card's blocks",
	"msg_too_long":            "the card is too long",
	"team_access_not_granted": "the token has no access to this workspace",
	"ekm_access_denied":       "the workspace's key management denied access",
	"not_allowed_token_type":  "this method needs a bot token (xoxb-)",
}

// temporaryCodes are Slack error codes worth repeating later.
var temporaryCodes = map[string]bool{
	"ratelimited": true, "rate_limited": true, "internal_error": true, "fatal_error": true,
	"service_unavailable": true, "request_timeout": true, "team_added_to_org": true,
}

func slackCode(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

// apiError maps a Slack API failure to the outbox's error kinds: rate
// limits (429, with Retry-After) and Slack's transient errors are
// temporary; refusals are permanent with a reason for the admin.
func (a *App) apiError(method string, err error) error {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return calls.Temporary(fmt.Errorf("slack %s: rate limited", method), rl.RetryAfter)
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		if sc.Code == 429 || sc.Code == 408 || sc.Code >= 500 {
			return calls.Temporary(fmt.Errorf("slack %s: HTTP %d", method, sc.Code), 0)
		}
		return calls.Permanent(fmt.Sprintf("slack %s refused the request (HTTP %d): check api_url", method, sc.Code), err)
	}
	if code := slackCode(err); code != "" {
		if why, ok := permanentCodes[code]; ok {
			return calls.Permanent(fmt.Sprintf("slack %s: %s (%s)", method, why, code), err)
		}
		if temporaryCodes[code] {
			return calls.Temporary(fmt.Errorf("slack %s: %s", method, code), 0)
		}
		return calls.Permanent(fmt.Sprintf("slack %s refused the request (%s)", method, code), err)
	}
	var te *calls.TemporaryError
	var pe *calls.PermanentError
	if errors.As(err, &te) || errors.As(err, &pe) {
		return err
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL may carry the token in its query
	}
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return calls.Temporary(fmt.Errorf("slack %s: %w", method, err), 0)
	}
	return calls.Temporary(fmt.Errorf("slack %s: %w", method, err), 0)
}
