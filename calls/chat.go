package calls

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// WebhookReply is how an inbound webhook is answered when its sender
// expects more than a status: a challenge answer (Zoom url_validation,
// Slack url_verification, Discord PING), or the message a chat platform
// shows for a command.
type WebhookReply struct {
	Status      int // 0 means 200
	ContentType string
	Body        []byte
	// Header holds extra response headers (a redirect's Location, a
	// cookie binding an OAuth state to the browser).
	Header http.Header
}

// ProviderWebhook is what a provider status webhook held once verified:
// events to apply, and the reply the provider expects, if any.
type ProviderWebhook struct {
	Events []ProviderEvent
	Reply  *WebhookReply
}

// ChatUser is who typed a command or clicked a button on a chat platform.
type ChatUser struct {
	// ID is the platform's user id (not yet qualified by the chat name).
	ID     string
	Name   string
	Locale string
}

// ChatAction is a click on a card's button.
type ChatAction struct {
	Kind   string // "join", "end", "decline", "accept"
	CallID string
}

// ChatRequest is one verified, parsed request from a chat platform.
type ChatRequest struct {
	// Reply, when set, is the whole answer (a challenge): nothing else runs.
	Reply *WebhookReply
	// DeliveryID identifies a delivery the platform may repeat (Slack
	// retries, Stream's X-Webhook-Id); empty when it gives none.
	DeliveryID string
	// MessageRef, when set, is the platform message that becomes the card
	// of a call this request starts (Stream Chat: the command's own
	// message, which the answer rewrites): the outbox then edits that
	// message instead of posting a card of its own.
	MessageRef string
	// ReplayKey is unique to one signed request (its signature): the
	// intake refuses a second request with the same key, so a captured
	// request cannot be sent again within the signature's time window.
	// Empty when the platform signs nothing per request.
	ReplayKey string
	// Replay, when set, is the request's replay mark (from ReplayKey), left
	// by the intake for RunChat to record: a command that starts a call
	// records it in the transaction that stores the call, so that the
	// command is one write; any other outcome records it on its own
	// (Store.MarkOnce) before RunChat returns. Either way a replay gets an
	// error wrapping ErrDuplicateDelivery. Nil: the intake recorded the
	// mark itself, or there is none.
	Replay *DeliveryMark
	User   ChatUser
	// Surface is the conversation the request came from; the intake sets
	// its Chat to the configured name.
	Surface Surface
	Command *Command
	Action  *ChatAction
	// RoomStrategy is the chat's room_strategy (set by the intake from the
	// configuration); empty means RoomPerCall.
	RoomStrategy RoomStrategy
	// Private carries what the adapter needs to answer (an interaction
	// token, a response URL); the intake passes it back untouched.
	Private any
}

// ChatOutcome is what running a chat request did, for the adapter to put
// into words.
type ChatOutcome struct {
	Call    Call
	Created bool
	// JoinURL is the stable link of the call; PersonalURL a signed link
	// for the requesting user, when one was minted.
	JoinURL     string
	PersonalURL string
	// Err is a domain error whose message is safe to show.
	Err error
	// Notices are template keys of sentences to add to the answer
	// (NoticeRingOff, NoticeRingOn, NoticeNotRung).
	Notices []string
}

// Notices a chat answer may carry (keys of templates.Set.Text).
const (
	NoticeRingOff = "card.ring_off"
	NoticeRingOn  = "card.ring_on"
	NoticeNotRung = "card.not_rung"
)

// DirectPrefix starts the Channel of a surface that is a direct message
// to one person of the platform ("dm:<platform user id>"): the card that
// rings them. Adapters that can write to a person open the direct
// conversation themselves; others deliver nothing to such a surface.
const DirectPrefix = "dm:"

// DirectUser returns the platform user id a "dm:" surface rings.
func (s Surface) DirectUser() (string, bool) {
	u, ok := strings.CutPrefix(s.Channel, DirectPrefix)
	return u, ok && u != ""
}

// RingPreferences is an optional capability of a Store: people who asked
// not to be rung by name (`/call ring off`), per chat.
type RingPreferences interface {
	// SetRingOptOut records (out) or forgets (!out) the opt-out of the
	// platform user of chat.
	SetRingOptOut(ctx context.Context, chat, platformUserID string, out bool, at time.Time) error
	// RingOptOuts returns which of the platform users of chat opted out.
	RingOptOuts(ctx context.Context, chat string, platformUserIDs []string) (map[string]bool, error)
}

// ChannelMembership is an optional capability of a chat adapter: whether
// a person still belongs to the conversation of a surface, where the
// platform can tell. The intake asks it before minting a personal join
// link for a click or a command.
type ChannelMembership interface {
	IsMember(ctx context.Context, s Surface, platformUserID string) (bool, error)
}

// ChatIntake verifies and parses what a chat platform sends to
// /webhooks/chats/<name>/<path>, and words the answer.
type ChatIntake interface {
	ParseChat(ctx context.Context, path string, req WebhookRequest) (ChatRequest, error)
	ReplyChat(ctx context.Context, req ChatRequest, out ChatOutcome) (WebhookReply, error)
}

// CardDelivery is one card to bring up to date.
type CardDelivery struct {
	Call    Call
	Surface Surface
	// Version is the call version the card shows (Call.Version).
	Version int64
	// DeliveryID is the same on every retry of this delivery.
	DeliveryID string
	// JoinURL is the call's stable join link at the gateway.
	JoinURL string
}

// CardPoster shows calls on a chat platform. It posts a new card when
// d.Surface.Delivery.MessageRef is empty and edits that message otherwise,
// and returns the message reference to keep. Errors should be
// TemporaryError or PermanentError so the outbox knows whether to retry.
type CardPoster interface {
	PostCard(ctx context.Context, d CardDelivery) (messageRef string, err error)
}

// DestinationLimiter is an optional capability of a CardPoster: the rate
// limit key of a surface (a webhook URL, a Slack channel), so the outbox
// paces edits per destination. Without it the chat name is the key.
type DestinationLimiter interface {
	Destination(s Surface) string
}
