package config

import (
	"slices"
	"strings"
)

// Kind is one provider or chat platform kind as the configuration sees it.
// cmd/callgate builds the list from the adapters' descriptors
// (adapters.ProviderKind, adapters.ChatKind); config never imports them.
type Kind struct {
	// Name is what `kind:` selects, such as "jitsi".
	Name string
	// NewSettings returns a pointer to a new settings struct holding the
	// kind's defaults. A block's settings (all but `kind`) are decoded
	// into it by the same rules as the rest of the file: fields by their
	// `yaml` tag, unknown fields are errors, ${NAME} interpolation, null
	// keeps the default, maps and lists replaced whole. Fields tagged
	// `secret:"true"` (and everything below them) are never quoted in a
	// message. Supported field types: string, bool, integers, floats,
	// time.Duration, pointers, structs, string-keyed maps and slices of
	// these.
	NewSettings func() any
}

// Kinds lists every kind the gateway supports.
type Kinds struct {
	Providers []Kind
	Chats     []Kind
}

// Block is one `providers.<name>` or `chats.<name>` entry.
type Block struct {
	// Name is the entry's name in the file.
	Name string
	// Kind is the selected kind: `kind:`, or the name when it is a kind and
	// `kind` was left out.
	Kind string
	// Settings is what the kind's NewSettings returned, with the block
	// decoded into it and validated.
	Settings any
	// RoomStrategy is a chat block's `room_strategy` (per_call, the
	// default when empty; per_channel; per_user), a setting every chat
	// kind accepts and the engine applies; always empty for providers.
	RoomStrategy string
	// Line is where the block's name was written (in defaults.yaml for a
	// block the file did not replace).
	Line int
}

// Validator is implemented (on the pointer) by settings structs with rules
// of their own. Validate runs once, after the block is decoded, and calls
// report for each problem:
//
//   - field is relative to the block ("app_secret", "tls.cert",
//     "rooms[0]"); config prints it as "providers.<name>.app_secret" with
//     the line it was written on, or else the line of the first of near
//     that was written, or else the block's line.
//   - message says what is wrong. Where it should show the value, write
//     {value} (the Value constant): config renders it quoted, or as "the
//     value of ${NAME}" when it came from the environment, or as "the
//     value" for a secret field. Never format a value into the message
//     yourself; config also blanks out any secret or environment value
//     found in it.
type Validator interface {
	Validate(report func(field, message string, near ...string))
}

// Value is the placeholder for the field's value in a Validator's messages.
const Value = "{value}"

// family is one kind of kinded block: providers or chats.
type family struct {
	what  string // "provider", "chat platform"
	kinds []Kind
}

func (f family) find(name string) (Kind, bool) {
	for _, k := range f.kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// names lists the kinds for messages, sorted.
func (f family) names() string {
	if len(f.kinds) == 0 {
		return "none yet"
	}
	names := make([]string, len(f.kinds))
	for i, k := range f.kinds {
		names[i] = k.Name
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
