package calls

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNormalizeID(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  string
	}{
		{in: "Call-123", want: "call-123"},
		{in: "call-123", want: "call-123"},
		{in: "  MiXeD_Case  ", want: "mixed_case"},
		{in: "", wantErr: "must not be empty"},
		{in: "   ", wantErr: "must not be empty"},
		{in: "call 123", wantErr: "' ' at position 5"},
		{in: "call/123", wantErr: "'/' at position 5"},
		{in: "café", wantErr: "'é' at position 4"},
		{in: "\u212aelvin", wantErr: "'\u212a' at position 1"}, // Kelvin sign: strings.ToLower folds it to "k"
		{in: "\u0130stanbul", wantErr: "'İ' at position 1"},    // dotted capital I: folds to "i̇"
		{in: "\u00a0call\u00a0", wantErr: "position 1"},        // no-break space is not trimmed
		{in: "\tCALL-1\n", want: "call-1"},
		{in: strings.Repeat("a", MaxIDLength), want: strings.Repeat("a", MaxIDLength)},
		{in: strings.Repeat("a", MaxIDLength+1), wantErr: "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeID(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidID) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NormalizeID(%q) error = %v, want ErrInvalidID containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeID(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNewIDIsNormalAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if n, err := NormalizeID(id); err != nil || n != id || len(id) != IDTimeChars+20 {
			t.Fatalf("NewID() = %q is not a normalised %d-character id (%v)", id, IDTimeChars+20, err)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

// Ids made later sort later, byte by byte, across every carry of the
// base-31 time prefix (digits sort before letters in bytes, which is why
// the prefix has an alphabet of its own); the rest is random.
func TestNewIDSortsByTime(t *testing.T) {
	base := time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC)
	steps := []time.Duration{0, time.Millisecond, 30 * time.Millisecond, 31 * time.Millisecond, 961 * time.Millisecond,
		time.Second, time.Minute, time.Hour, 24 * time.Hour, 365 * 24 * time.Hour, 100 * 365 * 24 * time.Hour}
	prev := ""
	for i, d := range steps {
		id := newIDAt(base.Add(d))
		if n, err := NormalizeID(id); err != nil || n != id {
			t.Fatalf("newIDAt(+%v) = %q is not normalised (%v)", d, id, err)
		}
		if i > 0 && id[:IDTimeChars] <= prev[:IDTimeChars] {
			t.Fatalf("+%v: prefix %q does not sort after %q", d, id[:IDTimeChars], prev[:IDTimeChars])
		}
		prev = id
	}
	// Every millisecond in a long run sorts after the one before.
	last := ""
	for ms := range int64(100_000) {
		p := newIDAt(base.Add(time.Duration(ms) * time.Millisecond))[:IDTimeChars]
		if p <= last {
			t.Fatalf("ms %d: %q after %q", ms, p, last)
		}
		last = p
	}
	// The same millisecond: same prefix, different random parts.
	a, b := newIDAt(base), newIDAt(base)
	if a[:IDTimeChars] != b[:IDTimeChars] || a == b {
		t.Fatalf("two ids of one millisecond: %q %q", a, b)
	}
	// Before 1970 (a clock gone wrong) is the smallest prefix, not a panic.
	if p := newIDAt(time.Unix(-5, 0))[:IDTimeChars]; p != strings.Repeat("2", IDTimeChars) {
		t.Fatalf("prefix before 1970: %q", p)
	}
}

func TestParseTypeAndRole(t *testing.T) {
	for _, in := range []string{"", "video", "audio"} {
		if _, err := ParseType(in); err != nil {
			t.Errorf("ParseType(%q) = %v", in, err)
		}
	}
	if _, err := ParseType("hologram"); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("ParseType(hologram) = %v, want ErrInvalidInput", err)
	}
	for _, r := range Roles {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	if r, _ := ParseRole(""); r != RoleParticipant {
		t.Errorf("ParseRole(\"\") = %q, want participant", r)
	}
	if _, err := ParseRole("admin"); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("ParseRole(admin) = %v, want ErrInvalidInput", err)
	}
	moderators := map[Role]bool{RoleOwner: true, RolePanelist: true}
	for _, r := range Roles {
		if r.IsModerator() != moderators[r] {
			t.Errorf("%s.IsModerator() = %v", r, r.IsModerator())
		}
		if r.CanPublish() != (r != RoleListener) {
			t.Errorf("%s.CanPublish() = %v", r, r.CanPublish())
		}
	}
}

func TestTransitions(t *testing.T) {
	allowed := map[State][]State{
		StateCreated:  {StateRinging, StateActive, StateEnded, StateFailed},
		StateRinging:  {StateAccepted, StateRejected, StateMissed, StateActive, StateEnded, StateFailed},
		StateAccepted: {StateActive, StateEnded, StateFailed},
		StateActive:   {StateEnded, StateFailed},
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, from := range States {
		for _, to := range States {
			c := Call{ID: "c1", State: from}
			if from.Terminal() {
				c.EndReason = "x"
			}
			reason := ""
			if to.Terminal() {
				reason = "because"
			}
			ev, err := c.Transition(to, reason, at)
			legal := false
			for _, s := range allowed[from] {
				legal = legal || s == to
			}
			switch {
			case legal && err != nil:
				t.Errorf("%s → %s: unexpected error %v", from, to, err)
			case legal:
				if c.State != to || ev.State != to || ev.CallID != "c1" || !ev.At.Equal(at) {
					t.Errorf("%s → %s: call %+v event %+v", from, to, c, ev)
				}
				if to.Terminal() && (c.EndedAt == nil || c.EndReason != "because") {
					t.Errorf("%s → %s: terminal state without ended_at/reason", from, to)
				}
			case from.Terminal():
				if !errors.Is(err, ErrCallEnded) {
					t.Errorf("%s → %s: error %v, want ErrCallEnded", from, to, err)
				}
			default:
				if !errors.Is(err, ErrInvalidTransition) || c.State != from {
					t.Errorf("%s → %s: error %v state %s, want ErrInvalidTransition and no change", from, to, err, c.State)
				}
			}
		}
	}
	c := Call{State: StateActive}
	if _, err := c.Transition(StateEnded, "", at); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("terminal transition without reason: %v", err)
	}
}

func TestLivePersonView(t *testing.T) {
	want := map[State]string{
		StateCreated: "INVITED", StateRinging: "INVITED", StateAccepted: "ACCEPTED", StateActive: "ACCEPTED",
		StateRejected: "CLOSED", StateMissed: "CLOSED", StateEnded: "CLOSED", StateFailed: "CLOSED",
	}
	for s, w := range want {
		if got := s.LivePerson(); got != w {
			t.Errorf("%s.LivePerson() = %s, want %s", s, got, w)
		}
	}
}

func TestMarkPresenceOrdersBySequence(t *testing.T) {
	at := time.Unix(100, 0)
	type step struct {
		identity string
		present  bool
		seq      int64
		changed  bool
	}
	tests := []struct {
		name  string
		steps []step
		want  []string
	}{
		{"join then leave", []step{{"a", true, 1, true}, {"a", false, 2, true}}, nil},
		{"late join after leave does not resurrect", []step{{"a", false, 2, false}, {"a", true, 1, false}}, nil},
		{"leave arrives before its join, join is older", []step{{"a", true, 1, true}, {"a", false, 3, true}, {"a", true, 2, false}}, nil},
		{"rejoin with newer seq", []step{{"a", true, 1, true}, {"a", false, 2, true}, {"a", true, 3, true}}, []string{"a"}},
		{"duplicate join", []step{{"a", true, 1, true}, {"a", true, 1, false}}, []string{"a"}},
		{"no sequence applies in arrival order", []step{{"a", true, 0, true}, {"b", true, 0, true}, {"a", false, 0, true}}, []string{"b"}},
		{"independent identities", []step{{"a", true, 5, true}, {"b", true, 1, true}}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Call{ID: "c", State: StateActive}
			for i, s := range tt.steps {
				ev, changed := c.MarkPresence(s.identity, "N "+s.identity, s.present, s.seq, at)
				if changed != s.changed {
					t.Fatalf("step %d: changed = %v, want %v", i, changed, s.changed)
				}
				if changed {
					wantKind := EventLeft
					if s.present {
						wantKind = EventJoined
					}
					if ev.Kind != wantKind || ev.Identity != s.identity {
						t.Fatalf("step %d: event %+v", i, ev)
					}
				}
			}
			var got []string
			for _, p := range c.Participants {
				got = append(got, p.Identity)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("roster = %v, want %v", got, tt.want)
			}
		})
	}
	ended := Call{State: StateEnded}
	if _, changed := ended.MarkPresence("a", "", true, 1, at); changed || len(ended.Participants) != 0 {
		t.Fatal("an ended call's roster changed")
	}
}

func TestBusDropsForSlowSubscriber(t *testing.T) {
	b := NewBus()
	fast, stopFast := b.Subscribe(4)
	_, stopSlow := b.Subscribe(1)
	defer stopFast()
	for i := range 3 {
		b.Publish(Notification{Event: Event{Seq: int64(i)}})
	}
	for i := range 3 {
		if n := <-fast; n.Event.Seq != int64(i) {
			t.Fatalf("fast subscriber got %d, want %d", n.Event.Seq, i)
		}
	}
	if b.Dropped() != 2 {
		t.Fatalf("Dropped() = %d, want 2 for the slow subscriber", b.Dropped())
	}
	stopSlow()
	stopSlow() // idempotent
}

func TestRoomRequestRoomName(t *testing.T) {
	for _, tc := range []struct {
		req  RoomRequest
		want string
	}{
		{RoomRequest{CallID: "abc"}, "abc"},
		{RoomRequest{CallID: "abc", Name: "chan-1"}, "chan-1"},
	} {
		if got := tc.req.RoomName(); got != tc.want {
			t.Errorf("%+v.RoomName() = %q, want %q", tc.req, got, tc.want)
		}
	}
}
