package discord

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/callgate/callgate/calls"
)

// MaxBodyBytes bounds an interaction's body (the server refuses larger
// bodies before the adapter sees them; this is the adapter's own bound).
const MaxBodyBytes = 512 << 10

// CustomIDPrefix starts the custom_id of every button callgate draws:
// "callgate:<action>:<call id>".
const CustomIDPrefix = "callgate:"

// Names of the command, its subcommands and options (see Commands).
const (
	CommandName   = "call"
	SubStart      = "start"
	SubEnd        = "end"
	SubHelp       = "help"
	SubRing       = "ring"
	OptRing       = "ring" // on | off, /call ring's one option
	OptType       = "type"
	OptWith       = "with"
	OptProvider   = "provider"
	OptTitle      = "title"
	OptNew        = "new"
	maxRingOption = 3 // with, with2, with3
)

// pending is what ParseChat leaves in ChatRequest.Private for ReplyChat.
type pending struct {
	// InteractionID and Token identify the interaction (a follow-up
	// could use them within 15 minutes; the card never does).
	InteractionID string
	Token         string
	// Locale is the one Discord reports for the person ("fr", "en-US").
	Locale string
	// commandErr is why the options do not make a command; nothing runs.
	commandErr error
	// unknown is set for an interaction callgate did not draw (another
	// command, a modal): it is answered with the help.
	unknown bool
}

// ParseChat verifies and parses an interaction. Path must be "" or
// "interactions"; the method POST.
func (a *App) ParseChat(_ context.Context, path string, req calls.WebhookRequest) (calls.ChatRequest, error) {
	switch strings.Trim(path, "/") {
	case "", "interactions":
	default:
		return calls.ChatRequest{}, malformed("unknown path %q: Discord's Interactions Endpoint URL is …/interactions", truncate(path, 64))
	}
	if req.Method != "" && req.Method != http.MethodPost {
		return calls.ChatRequest{}, malformed("interactions are POSTed, not %s", truncate(req.Method, 16))
	}
	if len(req.Body) > MaxBodyBytes {
		return calls.ChatRequest{}, malformed("the body is larger than %d bytes", MaxBodyBytes)
	}
	now := a.now()
	at, sig, err := Verify(req.Header, req.Body, now, a.maxAge, a.keys...)
	if err != nil {
		return calls.ChatRequest{}, err
	}
	// Discord never sends one interaction twice: a signature seen before
	// within the window is a replay.
	if !a.replays.fresh(hex.EncodeToString(sig), at, now) {
		return calls.ChatRequest{}, unauthenticated("replayed interaction")
	}
	return a.parseInteraction(req.Body)
}

// parseInteraction decodes a verified body.
func (a *App) parseInteraction(body []byte) (calls.ChatRequest, error) {
	if !utf8.Valid(body) {
		return calls.ChatRequest{}, malformed("the body is not valid UTF-8")
	}
	var in discordgo.Interaction
	if err := json.Unmarshal(body, &in); err != nil {
		return calls.ChatRequest{}, malformed("the body is not an interaction: %s", truncate(err.Error(), 120))
	}
	switch in.Type {
	case discordgo.InteractionPing:
		return calls.ChatRequest{Reply: jsonReply(`{"type":1}`)}, nil
	case discordgo.InteractionApplicationCommandAutocomplete:
		// No option autocompletes; an empty list ends the spinner.
		return calls.ChatRequest{Reply: jsonReply(`{"type":8,"data":{"choices":[]}}`)}, nil
	case discordgo.InteractionApplicationCommand, discordgo.InteractionMessageComponent, discordgo.InteractionModalSubmit:
	default:
		return calls.ChatRequest{}, malformed("unknown interaction type %d", in.Type)
	}
	if !isSnowflake(in.ID) {
		return calls.ChatRequest{}, malformed("the interaction has no valid id")
	}
	p := &pending{InteractionID: in.ID, Token: in.Token, Locale: string(in.Locale)}
	out := calls.ChatRequest{DeliveryID: in.ID, Private: p}
	switch data := in.Data.(type) {
	case discordgo.ApplicationCommandInteractionData:
		if data.Name != CommandName {
			p.unknown = true
			break
		}
		cmd, err := a.commandFromOptions(data)
		if err != nil {
			p.commandErr = err
			break
		}
		out.Command = &cmd
	case discordgo.MessageComponentInteractionData:
		action, ok := parseCustomID(data.CustomID)
		if !ok {
			p.unknown = true
			break
		}
		out.Action = &action
	default:
		p.unknown = true
	}
	user, err := chatUser(&in)
	switch {
	case p.unknown:
		// Not callgate's (another command, a modal): answered with the
		// help and nothing runs, so who and where are only kept when
		// they are there and well-formed.
		if err == nil && isSnowflake(in.ChannelID) && (in.GuildID == "" || isSnowflake(in.GuildID)) {
			out.User = user
			out.Surface = calls.Surface{Chat: a.name, Workspace: in.GuildID, Channel: in.ChannelID}
		}
		return out, nil
	case err != nil:
		return calls.ChatRequest{}, err
	case !isSnowflake(in.ChannelID):
		return calls.ChatRequest{}, malformed("the interaction has no valid channel_id")
	case in.GuildID != "" && !isSnowflake(in.GuildID):
		return calls.ChatRequest{}, malformed("guild_id is not a Discord id")
	}
	out.User = user
	out.Surface = calls.Surface{Chat: a.name, Workspace: in.GuildID, Channel: in.ChannelID}
	return out, nil
}

func jsonReply(body string) *calls.WebhookReply {
	return &calls.WebhookReply{Status: http.StatusOK, ContentType: "application/json", Body: []byte(body)}
}

// chatUser is who sent the interaction: member.user in a server, user in a
// DM. The name is the server nickname, else the display name, else the
// user name.
func chatUser(in *discordgo.Interaction) (calls.ChatUser, error) {
	var u *discordgo.User
	nick := ""
	if in.Member != nil && in.Member.User != nil {
		u, nick = in.Member.User, in.Member.Nick
	} else if in.User != nil {
		u = in.User
	}
	if u == nil || !isSnowflake(u.ID) {
		return calls.ChatUser{}, malformed("the interaction names no valid user")
	}
	name := nick
	if name == "" {
		name = u.GlobalName
	}
	if name == "" {
		name = u.Username
	}
	return calls.ChatUser{ID: u.ID, Name: cleanName(name), Locale: string(in.Locale)}, nil
}

// cleanName drops control characters and bounds a display name.
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	return truncate(strings.TrimSpace(s), 100)
}

// commandFromOptions builds the command from the typed options: the
// subcommands start, end and help, or (as an older registration or the
// docs' flat example sends them) start's options at the top level.
func (a *App) commandFromOptions(data discordgo.ApplicationCommandInteractionData) (calls.Command, error) {
	opts := data.Options
	sub := SubStart
	if len(opts) == 1 && opts[0] != nil && opts[0].Type == discordgo.ApplicationCommandOptionSubCommand {
		sub, opts = opts[0].Name, opts[0].Options
	}
	switch sub {
	case SubEnd, SubHelp:
		if len(opts) > 0 {
			return calls.Command{}, invalid("/call %s takes no options", sub)
		}
		if sub == SubEnd {
			return calls.Command{Kind: calls.CommandEnd}, nil
		}
		return calls.Command{Kind: calls.CommandHelp}, nil
	case SubRing:
		// /call ring ring:on|off: whether the person may be rung by name.
		if len(opts) != 1 || opts[0] == nil || opts[0].Name != OptRing || opts[0].Type != discordgo.ApplicationCommandOptionString {
			return calls.Command{}, invalid("/call ring takes one option, ring: on or off")
		}
		v, _ := opts[0].Value.(string)
		if v != "on" && v != "off" {
			return calls.Command{}, invalid("/call ring: on or off")
		}
		return calls.Command{Kind: calls.CommandRing, RingOn: v == "on"}, nil
	case SubStart:
	default:
		return calls.Command{}, invalid("unknown subcommand %q", truncate(sub, 32))
	}
	cmd := calls.Command{Kind: calls.CommandStart, Type: calls.TypeVideo}
	seen := map[string]bool{}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if seen[o.Name] {
			return calls.Command{}, invalid("option %q is given twice", truncate(o.Name, 32))
		}
		seen[o.Name] = true
		switch {
		case o.Name == OptType:
			v, _ := o.Value.(string)
			switch strings.ToLower(v) {
			case "audio":
				cmd.Type = calls.TypeAudio
			case "video":
				cmd.Type = calls.TypeVideo
			default:
				return calls.Command{}, invalid("type must be audio or video")
			}
		case isRingOption(o.Name):
			id, _ := o.Value.(string)
			if o.Type != discordgo.ApplicationCommandOptionUser || !isSnowflake(id) {
				return calls.Command{}, invalid("%s must be a person", o.Name)
			}
			if !containsString(cmd.Mentions, id) {
				cmd.Mentions = append(cmd.Mentions, id)
			}
		case o.Name == OptProvider:
			v, _ := o.Value.(string)
			v = strings.TrimSpace(v)
			if v == "" || a.isProvider == nil || !a.isProvider(v) {
				return calls.Command{}, fmt.Errorf("%w: %q is not a configured provider", calls.ErrUnknownProvider, truncate(v, 64))
			}
			cmd.Provider = v
		case o.Name == OptTitle:
			v, ok := o.Value.(string)
			if !ok {
				return calls.Command{}, invalid("title must be text")
			}
			v = strings.Join(strings.Fields(v), " ")
			if strings.ContainsFunc(v, unicode.IsControl) {
				return calls.Command{}, invalid("the title contains control characters")
			}
			if n := utf8.RuneCountInString(v); n > calls.MaxTitleLength {
				return calls.Command{}, invalid("the title is longer than %d characters", calls.MaxTitleLength)
			}
			cmd.Title = v
		case o.Name == OptNew:
			v, ok := o.Value.(bool)
			if !ok {
				return calls.Command{}, invalid("new must be true or false")
			}
			cmd.New = v
		default:
			return calls.Command{}, invalid("unknown option %q (run `callgate discord register` again)", truncate(o.Name, 32))
		}
	}
	return cmd, nil
}

// ringOptions are the USER options that ring someone: with, with2, with3.
func isRingOption(name string) bool {
	if name == OptWith {
		return true
	}
	for i := 2; i <= maxRingOption; i++ {
		if name == fmt.Sprintf("%s%d", OptWith, i) {
			return true
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", calls.ErrInvalidInput, fmt.Sprintf(format, args...))
}

// CustomID is the custom_id of a card button: "callgate:<action>:<call id>".
func CustomID(action, callID string) string { return CustomIDPrefix + action + ":" + callID }

// parseCustomID reads "callgate:<action>:<call id>".
func parseCustomID(s string) (calls.ChatAction, bool) {
	rest, ok := strings.CutPrefix(s, CustomIDPrefix)
	if !ok {
		return calls.ChatAction{}, false
	}
	action, id, ok := strings.Cut(rest, ":")
	if !ok {
		return calls.ChatAction{}, false
	}
	switch action {
	case "join", "end", "accept", "decline":
	default:
		return calls.ChatAction{}, false
	}
	id, err := calls.NormalizeID(id)
	if err != nil {
		return calls.ChatAction{}, false
	}
	return calls.ChatAction{Kind: action, CallID: id}, true
}

// truncate bounds s to n bytes without splitting a rune.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
