// Package ws is callgate's WebSocket API for client apps: the videochat
// handshake (request, invite, accept, decline, merge) of
// shared/seeds/videochat-handshake-api.txt, every call change as a "call"
// event in the Capacitor vocabulary, resume from the last event id, and a
// hub that fans events out from the store's event log to the sockets of
// this replica (woken in-process and, across replicas, by PostgreSQL
// LISTEN/NOTIFY). See api/WEBSOCKET.md for the protocol.
package ws

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/callgate/callgate/calls"
)

// Request names (client → server).
const (
	ReqRequestDirect = "videochat:requestDirectVideochat"
	ReqInvite        = "videochat:invite"
	ReqAccept        = "videochat:acceptVideochatRequest"
	ReqDecline       = "videochat:declineVideochatRequest"
	ReqMerge         = "videochat:mergeToVideochat"
	ReqPing          = "ping"
	// Our extension: a user's block list. A blocked user's rings and
	// invitations get 10011, like an offline user's.
	ReqBlock   = "videochat:blockUser"
	ReqUnblock = "videochat:unblockUser"
	ReqBlocks  = "videochat:blockedUsers"
)

// Event names (server → client).
const (
	EvRequested      = "videochat:videochatRequested"
	EvDirectAccepted = "videochat:directVideochatRequestAccepted"
	EvAccepted       = "videochat:videochatAccepted"
	EvDeclined       = "videochat:videochatDeclined"
	EvCall           = "call"
	EvSession        = "session"
	EvPong           = "pong"
	EvError          = "error"
)

// Error codes. 1021 and 10011 are the seed's; the others follow HTTP.
const (
	CodeUserNotFound    = 1021
	CodeUserUnavailable = 10011
	CodeBadRequest      = 400
	CodeForbidden       = 403
	CodeNotFound        = 404
	CodeConflict        = 409
	CodeGone            = 410
	CodeInternal        = 500
	CodeProvider        = 502
	CodeNotReady        = 503
)

// EventMeta is the seed's event block: the request id a client chose
// (echoed on the response), or, on server events, the event log seq to
// resume from. Date is Unix milliseconds.
type EventMeta struct {
	ID   string `json:"id"`
	Date int64  `json:"date"`
}

// Inbound is a frame from a client.
type Inbound struct {
	Name  string          `json:"name"`
	Data  json.RawMessage `json:"data"`
	Event *EventMeta      `json:"event"`
}

// ErrorBody is the seed's error block; status is true when the request
// failed, and code 0 with status false on success.
type ErrorBody struct {
	Status  bool   `json:"status"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Outbound is a frame to a client: a response (name of the request, its
// event id echoed) or an event.
type Outbound struct {
	Name  string    `json:"name"`
	Data  any       `json:"data"`
	Error ErrorBody `json:"error"`
	Event EventMeta `json:"event"`
}

// reqError is a request failure with its code.
type reqError struct {
	code int
	msg  string
}

func (e *reqError) Error() string { return e.msg }

func fail(code int, msg string) error { return &reqError{code: code, msg: msg} }

// errorBody maps an error to the seed's error block: request errors carry
// their code; domain errors map like the REST API's; anything else is
// internal and shown without detail.
func errorBody(err error) ErrorBody {
	var re *reqError
	if errors.As(err, &re) {
		return ErrorBody{Status: true, Code: re.code, Message: re.msg}
	}
	if errors.Is(err, calls.ErrUnavailable) {
		// The store's words name no reason, and must not: see
		// errUnavailable.
		return errorBody(errUnavailable())
	}
	for _, m := range []struct {
		err  error
		code int
	}{
		{calls.ErrAlreadyAccepted, CodeConflict},
		{calls.ErrInvalidID, CodeBadRequest},
		{calls.ErrInvalidInput, CodeBadRequest},
		{calls.ErrUnknownProvider, CodeBadRequest},
		{calls.ErrNotFound, CodeNotFound},
		{calls.ErrCallEnded, CodeGone},
		{calls.ErrInvalidTransition, CodeConflict},
		{calls.ErrForbidden, CodeForbidden},
		{calls.ErrProvider, CodeProvider},
		{calls.ErrRoomNotReady, CodeNotReady},
	} {
		if errors.Is(err, m.err) {
			return ErrorBody{Status: true, Code: m.code, Message: err.Error()}
		}
	}
	return ErrorBody{Status: true, Code: CodeInternal, Message: "internal error"}
}

func millis(t time.Time) int64 { return t.UnixMilli() }

func seqID(seq int64) string {
	if seq == 0 {
		return ""
	}
	return strconv.FormatInt(seq, 10)
}

// UserSimple is the seed's "user simple structure".
type UserSimple struct {
	ID          string `json:"id"`
	FirstName   string `json:"firstName"`
	LastName    string `json:"lastName"`
	PrivacyMode int    `json:"privacyMode"`
	Avatar      string `json:"avatar"`
}

// CallMember is the Capacitor seed's CallMember.
type CallMember struct {
	UserID   string `json:"userId"`
	Name     string `json:"name,omitempty"`
	ImageURL string `json:"imageURL,omitempty"`
	Role     string `json:"role,omitempty"`
}

// Session is the LivePerson view of an invitation.
type Session struct {
	State     string `json:"sessionState"` // INVITED, ACCEPTED, CLOSED
	ExpiresAt int64  `json:"expires,omitempty"`
}

// CallEvent is the Capacitor seed's callEvent, with the call's members and
// the LivePerson session view.
type CallEvent struct {
	CallID  string       `json:"callId"`
	State   string       `json:"state"`
	UserID  string       `json:"userId,omitempty"`
	Reason  string       `json:"reason,omitempty"`
	Caller  *CallMember  `json:"caller,omitempty"`
	Members []CallMember `json:"members"`
	Type    string       `json:"type"`
	Session Session      `json:"session"`
	// Notice marks a missed-call notice: a ring that was already old when
	// this device connected, shown instead of ringing.
	Notice bool `json:"notice,omitempty"`
}

// Permissions is the seed's permissions block, from the member's role.
type Permissions struct {
	IsModerator   bool `json:"isModerator"`
	IsOwner       bool `json:"isOwner"`
	IsPanelist    bool `json:"isPanelist"`
	IsPresenter   bool `json:"isPresenter"`
	IsCoPresenter bool `json:"isCoPresenter"`
	IsPromoted    bool `json:"isPromoted"`
	IsParticipant bool `json:"isParticipant"`
	IsListener    bool `json:"isListener"`
}

// PermissionsOf derives the permissions of a role: each role has its own
// flag and those of the roles below it that it can do (an owner may also
// present and speak), except isListener, which only listeners have.
func PermissionsOf(r calls.Role) Permissions {
	rank := map[calls.Role]int{calls.RoleOwner: 0, calls.RolePanelist: 1, calls.RolePresenter: 2, calls.RoleCoPresenter: 3, calls.RolePromoted: 4, calls.RoleParticipant: 5, calls.RoleListener: 6}
	k, ok := rank[r]
	if !ok {
		k = 5
	}
	return Permissions{
		IsModerator:   k <= 1,
		IsOwner:       k == 0,
		IsPanelist:    k == 1,
		IsPresenter:   k == 2,
		IsCoPresenter: k == 3,
		IsPromoted:    k <= 4,
		IsParticipant: k <= 5,
		IsListener:    k == 6,
	}
}

// Joined is the accept response and the directVideochatRequestAccepted
// event: what a client needs to join the call at its provider.
type Joined struct {
	VideochatID        string      `json:"videochatId"`
	VideochatRequestID string      `json:"videochatRequestId,omitempty"`
	VideochatMode      string      `json:"videochatMode"`
	VideochatEngine    string      `json:"videochatEngine"`
	VideochatAppID     string      `json:"videochatAppId"`
	VideochatURL       string      `json:"videochatUrl"`
	Room               string      `json:"room"`
	Identity           string      `json:"identity"`
	UID                int64       `json:"uid"`
	Token              string      `json:"token"`
	SharedSecret       string      `json:"sharedSecret"`
	JoinURL            string      `json:"joinUrl,omitempty"`
	ExpiresAt          int64       `json:"expiresAt,omitempty"`
	User               UserSimple  `json:"user"`
	Permissions        Permissions `json:"permissions"`
}

// Requested is the videochatRequested event.
type Requested struct {
	VideochatRequestID string       `json:"videochatRequestId"`
	VideochatID        string       `json:"videochatId"`
	User               UserSimple   `json:"user"`
	Participants       []UserSimple `json:"participants"`
	Counter            int          `json:"counter"`
	// Busy says the user rung is in another call right now (they may
	// merge the caller into it).
	Busy      bool   `json:"busy"`
	Type      string `json:"type"`
	ExpiresAt int64  `json:"expiresAt"`
}

// RequestRef is the data of accepted and declined events.
type RequestRef struct {
	VideochatRequestID string `json:"videochatRequestId"`
	UserID             string `json:"userId,omitempty"`
	Reason             string `json:"reason,omitempty"`
}
