package ws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/callgate/callgate/calls"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

type requestDirect struct {
	TargetUser  string   `json:"targetUser"`
	TargetUsers []string `json:"targetUsers"`
	Type        string   `json:"type"`
	Provider    string   `json:"provider"`
	Title       string   `json:"title"`
	// Merge rings a callee who is in another call anyway (call waiting),
	// so that they may merge the caller into it; without it a busy
	// callee is not available (10011).
	Merge bool `json:"merge"`
}

type blockReq struct {
	TargetUser string `json:"targetUser"`
}

type inviteReq struct {
	TargetUser  string `json:"targetUser"`
	VideochatID string `json:"videochatId"`
}

type requestRef struct {
	VideochatRequestID string `json:"videochatRequestId"`
	VideochatID        string `json:"videochatId"`
}

// decode reads a request's data strictly: unknown fields are errors.
func decode(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(CodeBadRequest, "data: "+err.Error())
	}
	return nil
}

// handle runs one request for the socket's user and returns the data of
// its response.
func (h *Hub) handle(ctx context.Context, c *conn, in Inbound) (any, error) {
	actor := calls.UserActor(c.user)
	switch in.Name {
	case ReqPing:
		return map[string]any{}, nil
	case ReqRequestDirect:
		var req requestDirect
		if err := decode(in.Data, &req); err != nil {
			return nil, err
		}
		targets := req.TargetUsers
		if req.TargetUser != "" {
			targets = append([]string{req.TargetUser}, targets...)
		}
		return h.requestDirect(ctx, actor, targets, req)
	case ReqInvite:
		var req inviteReq
		if err := decode(in.Data, &req); err != nil {
			return nil, err
		}
		if req.VideochatID == "" {
			return nil, fail(CodeBadRequest, "data.videochatId is required")
		}
		// Being in this very call does not make the invitee busy for it.
		this, err := calls.NormalizeID(req.VideochatID)
		if err != nil {
			return nil, err
		}
		if err := h.checkTargets(ctx, actor, []string{req.TargetUser}); err != nil {
			return nil, err
		}
		// Checked again inside the transaction that adds the invitee.
		call, err := h.o.Service.Invite(calls.WithAvailabilityCheck(ctx, calls.AvailabilityCheck{
			Caller: actor.UserID, Callees: []string{req.TargetUser}, Except: this, Busy: true,
		}), actor, req.VideochatID, req.TargetUser)
		if err != nil {
			return nil, err
		}
		h.pushIfOffline(ctx, actor, call, []string{req.TargetUser})
		return map[string]string{"videochatRequestId": call.ID}, nil
	case ReqAccept:
		var req requestRef
		if err := decode(in.Data, &req); err != nil {
			return nil, err
		}
		if req.VideochatRequestID == "" {
			return nil, fail(CodeBadRequest, "data.videochatRequestId is required")
		}
		return h.accept(ctx, actor, req.VideochatRequestID)
	case ReqDecline:
		var req requestRef
		if err := decode(in.Data, &req); err != nil {
			return nil, err
		}
		if req.VideochatRequestID == "" {
			return nil, fail(CodeBadRequest, "data.videochatRequestId is required")
		}
		call, err := h.o.Service.Decline(ctx, actor, req.VideochatRequestID)
		if err != nil {
			return nil, err
		}
		return map[string]string{"videochatRequestId": call.ID}, nil
	case ReqMerge:
		var req requestRef
		if err := decode(in.Data, &req); err != nil {
			return nil, err
		}
		if req.VideochatRequestID == "" || req.VideochatID == "" {
			return nil, fail(CodeBadRequest, "data.videochatId and data.videochatRequestId are required")
		}
		call, err := h.o.Service.Merge(ctx, actor, req.VideochatRequestID, req.VideochatID)
		if err != nil {
			return nil, err
		}
		return map[string]string{"videochatId": call.ID, "videochatRequestId": strings.ToLower(req.VideochatRequestID)}, nil
	case ReqBlock, ReqUnblock, ReqBlocks:
		var req blockReq
		if err := decode(in.Data, &req); err != nil {
			return nil, err
		}
		return h.blocks(ctx, actor, in.Name, req.TargetUser)
	}
	return nil, fail(CodeBadRequest, fmt.Sprintf("unknown request %q", in.Name))
}

// blocks changes (blockUser, unblockUser) or reads (blockedUsers) the
// user's block list and returns it.
func (h *Hub) blocks(ctx context.Context, actor calls.Actor, name, target string) (any, error) {
	if name != ReqBlocks {
		if err := calls.ValidateUserID("targetUser", target); err != nil || strings.TrimSpace(target) == "" {
			return nil, fail(CodeBadRequest, "data.targetUser must be a user id")
		}
		if target == actor.UserID {
			return nil, fail(CodeBadRequest, "a user cannot block themselves")
		}
		var err error
		if name == ReqBlock {
			err = h.o.Store.Block(ctx, actor.UserID, target, h.now())
		} else {
			err = h.o.Store.Unblock(ctx, actor.UserID, target)
		}
		if err != nil {
			return nil, err
		}
	}
	list, err := h.o.Store.Blocks(ctx, actor.UserID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"blockedUsers": list}, nil
}

// maxTargets bounds the people one request rings.
const maxTargets = 50

// errUnavailable is 10011, whatever the reason: a caller must not learn
// whether they were blocked, the callee is busy, or offline.
func errUnavailable() error { return fail(CodeUserUnavailable, "user not available") }

// checkTargets answers 1021 for a user the gateway never knew, and 10011
// when nobody can be reached: every target offline on every replica and no
// push hook to wake them. Blocks and busy callees are refused by the write
// that would store the ring (calls.AvailabilityCheck), in its transaction.
func (h *Hub) checkTargets(ctx context.Context, actor calls.Actor, targets []string) error {
	if len(targets) == 0 {
		return fail(CodeBadRequest, "data.targetUser is required")
	}
	if len(targets) > maxTargets {
		return fail(CodeBadRequest, fmt.Sprintf("at most %d target users", maxTargets))
	}
	reachable := false
	for _, t := range targets {
		if err := calls.ValidateUserID("targetUser", t); err != nil || strings.TrimSpace(t) == "" {
			return fail(CodeBadRequest, "targetUser must be a user id")
		}
		if t == actor.UserID {
			return fail(CodeBadRequest, "a user cannot ring themselves")
		}
		known, err := h.knownUser(ctx, t)
		if err != nil {
			return err
		}
		if !known {
			return fail(CodeUserNotFound, fmt.Sprintf("user %q not found", t))
		}
		on, err := h.reachable(ctx, t)
		if err != nil {
			return err
		}
		reachable = reachable || on || h.o.PushURL != ""
	}
	if !reachable {
		return errUnavailable()
	}
	return nil
}

func (h *Hub) requestDirect(ctx context.Context, actor calls.Actor, targets []string, req requestDirect) (any, error) {
	if err := h.checkTargets(ctx, actor, targets); err != nil {
		return nil, err
	}
	members := make([]calls.Member, 0, len(targets))
	for _, t := range targets {
		members = append(members, calls.Member{UserID: t, Role: calls.RoleParticipant})
	}
	// Blocks and busy callees are checked inside the transaction that
	// stores the ring: a block or another call that commits meanwhile
	// refuses the ring before anyone sees it.
	guarded := calls.WithAvailabilityCheck(ctx, calls.AvailabilityCheck{Caller: actor.UserID, Callees: targets, Busy: !req.Merge})
	call, created, err := h.o.Service.Create(guarded, actor, calls.CreateRequest{
		Type: req.Type, Provider: req.Provider, Title: req.Title, Members: members, Ring: true,
	})
	if err != nil {
		return nil, err
	}
	if created {
		stored := call
		h.fresh.put(call.ID, &stored, h.now())
	}
	h.pushIfOffline(ctx, actor, call, targets)
	return map[string]string{"videochatRequestId": call.ID}, nil
}

func (h *Hub) pushIfOffline(ctx context.Context, actor calls.Actor, call calls.Call, targets []string) {
	if h.o.PushURL == "" {
		return
	}
	caller := h.member(ctx, actor.UserID, calls.RoleOwner)
	for _, t := range targets {
		if on, err := h.reachable(ctx, t); err == nil && !on {
			h.push(ctx, t, caller, call)
		}
	}
}

// accept answers a ring (or an invitation into a call under way) and
// returns the credential. A user who already accepted, on another
// device, gets 409 "already accepted": the service decides it on the
// locked call, so two devices accepting at the same instant cannot both
// succeed.
func (h *Hub) accept(ctx context.Context, actor calls.Actor, id string) (any, error) {
	call, err := h.o.Service.View(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	switch {
	case call.State.Terminal():
		return nil, fmt.Errorf("%w: call %s is %s (%s)", calls.ErrCallEnded, call.ID, call.State, call.EndReason)
	case call.IsOwner(actor.UserID) && call.State == calls.StateRinging:
		return nil, fail(CodeConflict, "the caller cannot accept their own ring")
	case call.State == calls.StateRinging:
		_, err = h.o.Service.Accept(ctx, actor, id)
		if errors.Is(err, calls.ErrInvalidTransition) {
			// Someone else answered first: join the call under way.
			_, err = h.o.Service.AcceptInvite(ctx, actor, id)
		}
	default:
		_, err = h.o.Service.AcceptInvite(ctx, actor, id)
	}
	if err != nil {
		return nil, err
	}
	j, err := h.joined(ctx, actor, call.ID)
	if err != nil {
		return nil, err
	}
	j.VideochatRequestID = call.ID
	return j, nil
}
