package calls

import "fmt"

// ActorKind is how a request proved who it is.
type ActorKind string

const (
	// ActorAPIKey is an app's server key: it may do anything, and may name
	// the user it acts for (UserID).
	ActorAPIKey ActorKind = "api_key"
	// ActorUser is a user token: it acts as exactly UserID.
	ActorUser ActorKind = "user"
	// ActorJoinLink is a signed personal join link: it may join the call it
	// was signed for as UserID, and nothing else.
	ActorJoinLink ActorKind = "join_link"
	// ActorChatUser is a user of a configured chat platform, verified by
	// the platform's signature. UserID is "<chat>:<platform user id>" and
	// Chat the configured chat name.
	ActorChatUser ActorKind = "chat_user"
	// ActorGuest is someone holding a call's stable join link.
	ActorGuest ActorKind = "guest"
	// ActorSystem is the gateway itself: timers, provider webhooks, workers.
	ActorSystem ActorKind = "system"
)

// Actor is who asks for something.
type Actor struct {
	Kind   ActorKind
	UserID string
	Chat   string
}

// APIKeyActor is a server key acting for userID ("" for nobody in particular).
func APIKeyActor(userID string) Actor { return Actor{Kind: ActorAPIKey, UserID: userID} }

// UserActor is a user token's holder.
func UserActor(userID string) Actor { return Actor{Kind: ActorUser, UserID: userID} }

// ChatUserActor is a user of the configured chat platform chat.
func ChatUserActor(chat, platformUserID string) Actor {
	return Actor{Kind: ActorChatUser, UserID: chat + ":" + platformUserID, Chat: chat}
}

// SystemActor is the gateway.
var SystemActor = Actor{Kind: ActorSystem}

// Privileged reports whether the actor may do anything to any call.
func (a Actor) Privileged() bool { return a.Kind == ActorAPIKey || a.Kind == ActorSystem }

// ActFor returns the actor acting for userID: a server key may name anyone,
// every other actor only itself. An empty userID keeps the actor as it is.
// It is the one place the "acting for another user" rule lives.
func (a Actor) ActFor(userID string) (Actor, error) {
	if userID == "" || userID == a.UserID {
		return a, nil
	}
	if a.Kind == ActorAPIKey {
		a.UserID = userID
		return a, nil
	}
	return Actor{}, fmt.Errorf("%w: a %s acts only as its own user", ErrForbidden, describeActor(a.Kind))
}

func describeActor(k ActorKind) string {
	switch k {
	case ActorUser:
		return "user token"
	case ActorJoinLink:
		return "join link"
	case ActorChatUser:
		return "chat user"
	case ActorGuest:
		return "guest"
	}
	return string(k)
}

// Action is what an actor wants to do to a call.
type Action string

const (
	ActionView       Action = "view"        // read the call
	ActionJoin       Action = "join"        // get a credential for the actor's own user
	ActionChooseRole Action = "choose_role" // join with a role other than the member's
	ActionEnd        Action = "end"         // end the call for everyone
	ActionAnswer     Action = "answer"      // accept or decline a ring
	ActionShow       Action = "show"        // show the call on another surface
	ActionRetry      Action = "retry"       // retry a dead card delivery
)

// Authorize decides whether the actor may act on the call. It is the only
// place these rules live; callers run it on the call as locked by the
// transaction that makes the change, so the answer cannot go stale before
// the change is written. The error wraps ErrForbidden and is safe to show:
// it never describes the call to someone who may not see it.
func Authorize(a Actor, c *Call, act Action) error {
	if a.Privileged() {
		return nil
	}
	_, member := c.Member(a.UserID)
	member = member && a.UserID != ""
	owner := c.IsOwner(a.UserID)
	switch act {
	case ActionView:
		switch {
		case member, a.Kind == ActorJoinLink:
			return nil
		case a.Kind == ActorChatUser && c.shownOn(a.Chat):
			return nil
		case (a.Kind == ActorUser || a.Kind == ActorGuest) && c.Guests:
			return nil
		case a.Kind == ActorUser && c.shownOn(StreamAPIChat):
			return nil
		}
	case ActionJoin:
		switch {
		case member, a.Kind == ActorJoinLink:
			// A join link was signed for this user by a request that was
			// allowed to mint it.
			return nil
		case a.Kind == ActorChatUser && c.shownOn(a.Chat) && !c.Direct():
			// Anyone who sees the card of an open call in that chat may join.
			return nil
		case (a.Kind == ActorUser || a.Kind == ActorGuest) && c.Guests:
			return nil
		case a.Kind == ActorUser && c.shownOn(StreamAPIChat):
			// Stream's retired endpoints let any signed-in user of the app
			// (a channel member) get a token for a channel's call; apps
			// built on them rely on it. Anonymous guests still need Guests.
			return nil
		}
	case ActionEnd:
		if owner {
			return nil
		}
		if member || a.Kind == ActorChatUser {
			return fmt.Errorf("%w: only the call's owner may end it", ErrForbidden)
		}
	case ActionAnswer:
		if member && a.Kind != ActorGuest && a.Kind != ActorJoinLink {
			return nil
		}
	case ActionShow:
		if owner {
			return nil
		}
	case ActionChooseRole, ActionRetry:
		// Server keys only.
	}
	return fmt.Errorf("%w: not a member of this call", ErrForbidden)
}

// StreamAPIChat names the surface of calls created through Stream's retired
// endpoint POST /channels/{type}/{id}/call: the Stream channel.
const StreamAPIChat = "stream-api"

// shownOn reports whether the call is shown on a surface of the chat.
func (c *Call) shownOn(chat string) bool {
	if chat == "" {
		return false
	}
	for _, s := range c.Surfaces {
		if s.Chat == chat {
			return true
		}
	}
	return false
}

// Direct reports whether the call rings particular people rather than
// being open to a channel: it has members besides its creator.
func (c *Call) Direct() bool {
	for _, m := range c.Members {
		if m.UserID != c.CreatedBy {
			return true
		}
	}
	return false
}
