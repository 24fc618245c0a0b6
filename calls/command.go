package calls

import (
	"fmt"
	"strings"
	"unicode"
)

// CommandKind is what a /call command asks for.
type CommandKind string

const (
	CommandStart CommandKind = "start"
	CommandEnd   CommandKind = "end"
	CommandHelp  CommandKind = "help"
	// CommandRing switches whether the person may be rung by name
	// (`/call ring off|on`); Command.RingOn says which.
	CommandRing CommandKind = "ring"
)

// Command is a parsed `/call` command, the one grammar every chat platform
// shares:
//
//	/call [new] [audio|video] [@person …] [provider-name] [title …]
//	/call end
//	/call help
//	/call ring off|on
type Command struct {
	Kind CommandKind
	Type Type
	// Mentions are the people to ring, as the platform wrote them without
	// the leading '@' (adapters turn their own mention syntax into "@id").
	Mentions []string
	// Provider is a configured provider name, when the command named one.
	Provider string
	Title    string
	// New insists on a new call even when the channel has a live one.
	New bool
	// RingOn is what `/call ring on|off` asks for.
	RingOn bool
}

// MaxCommandLength bounds a command's text.
const MaxCommandLength = 1000

// ParseCommand parses the text after the command name (a leading "/call"
// is accepted too). isProvider tells whether a word names a configured
// provider; nil means none does. Errors wrap ErrInvalidInput and say what
// to type instead.
func ParseCommand(text string, isProvider func(string) bool) (Command, error) {
	if len(text) > MaxCommandLength {
		return Command{}, fmt.Errorf("%w: the command is longer than %d characters", ErrInvalidInput, MaxCommandLength)
	}
	if strings.ContainsFunc(text, func(r rune) bool { return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' }) {
		return Command{}, fmt.Errorf("%w: the command contains control characters", ErrInvalidInput)
	}
	words := strings.Fields(text)
	if len(words) > 0 && strings.EqualFold(words[0], "/call") {
		words = words[1:]
	}
	cmd := Command{Kind: CommandStart, Type: TypeVideo}
	if len(words) > 0 {
		switch strings.ToLower(words[0]) {
		case "end", "hangup", "stop":
			if len(words) > 1 {
				return Command{}, fmt.Errorf("%w: `/call end` takes nothing after it", ErrInvalidInput)
			}
			return Command{Kind: CommandEnd}, nil
		case "help", "?":
			return Command{Kind: CommandHelp}, nil
		case "ring":
			if len(words) != 2 || (!strings.EqualFold(words[1], "on") && !strings.EqualFold(words[1], "off")) {
				return Command{}, fmt.Errorf("%w: type `/call ring off` not to be rung by name, `/call ring on` to be rung again", ErrInvalidInput)
			}
			return Command{Kind: CommandRing, RingOn: strings.EqualFold(words[1], "on")}, nil
		case "new":
			cmd.New = true
			words = words[1:]
		}
	}
	// Options come first, in any order; the first word that is none of
	// them starts the title.
	typed := false
	for len(words) > 0 {
		w := words[0]
		lw := strings.ToLower(w)
		switch {
		case !typed && (lw == "audio" || lw == "video"):
			cmd.Type, typed = Type(lw), true
		case strings.HasPrefix(w, "@") && len(w) > 1:
			cmd.Mentions = append(cmd.Mentions, w[1:])
		case cmd.Provider == "" && isProvider != nil && isProvider(w):
			cmd.Provider = w
		default:
			cmd.Title = strings.Join(words, " ")
			words = nil
			continue
		}
		words = words[1:]
	}
	if len([]rune(cmd.Title)) > MaxTitleLength {
		return Command{}, fmt.Errorf("%w: the title is longer than %d characters", ErrInvalidInput, MaxTitleLength)
	}
	return cmd, nil
}
