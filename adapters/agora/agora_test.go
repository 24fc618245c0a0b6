package agora

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// pinnedUID is UID("call-1", "ada"), computed with Python's hashlib.
const pinnedUID = 3374330892

var issued = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newTest(t testing.TB, cfg Config) *Provider {
	t.Helper()
	if cfg.AppID == "" {
		cfg.AppID, cfg.AppCertificate = testAppID, testCert
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return issued }
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewRefuses(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no app id":       {AppCertificate: testCert},
		"bad certificate": {AppID: testAppID, AppCertificate: "x"},
		"ttl":             {AppID: testAppID, AppCertificate: testCert, TokenTTL: 48 * time.Hour},
		"template":        {AppID: testAppID, AppCertificate: testCert, JoinURLTemplate: "{{"},
		"empty secret":    {AppID: testAppID, AppCertificate: testCert, NCSSecrets: []string{""}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), testCert) {
			t.Errorf("%s: error shows the certificate: %v", name, err)
		}
	}
}

func TestCreateRoomIsTheCallID(t *testing.T) {
	p := newTest(t, Config{})
	ctx := context.Background()
	for _, id := range []string{"call-1", "a_b-c", strings.Repeat("x", 63)} {
		r1, err := p.CreateRoom(ctx, calls.RoomRequest{CallID: id})
		if err != nil {
			t.Fatal(err)
		}
		r2, _ := p.CreateRoom(ctx, calls.RoomRequest{CallID: id})
		if !reflect.DeepEqual(r1, calls.Room{Name: id}) || !reflect.DeepEqual(r1, r2) {
			t.Errorf("%s: rooms %+v %+v", id, r1, r2)
		}
	}
	// A 64-character id (calls.MaxIDLength) is one byte over Agora's limit.
	long := strings.Repeat("a", 47) + strings.Repeat("b", 17)
	r, err := p.CreateRoom(ctx, calls.RoomRequest{CallID: long})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := p.CreateRoom(ctx, calls.RoomRequest{CallID: long[:63] + "c"})
	if len(r.Name) != 63 || !strings.HasPrefix(r.Name, strings.Repeat("a", 47)+"-") || r.Name == other.Name || ChannelName(long) != r.Name {
		t.Errorf("long id: %q (other %q)", r.Name, other.Name)
	}
	if _, err := p.CreateRoom(ctx, calls.RoomRequest{}); !errors.Is(err, calls.ErrInvalidInput) {
		t.Errorf("no call id: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.CreateRoom(cancelled, calls.RoomRequest{CallID: "x"}); err == nil {
		t.Error("cancelled context")
	}
	if err := p.EndRoom(ctx, r); err != nil {
		t.Errorf("EndRoom: %v", err)
	}
	if got := p.StreamCall(r); !reflect.DeepEqual(got, map[string]any{"channel": r.Name}) {
		t.Errorf("StreamCall %v", got)
	}
}

// Every character a normalised call id may hold is one Agora allows in a
// channel name.
func TestChannelNameAlphabet(t *testing.T) {
	const agoraAllowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&()+-:;<=.>?@[]^_{}|~,"
	for r := rune(0); r < 128; r++ {
		id, err := calls.NormalizeID("x" + string(r))
		if err != nil {
			continue
		}
		if !strings.Contains(agoraAllowed, id[1:]) {
			t.Errorf("call id %q is not a valid Agora channel name", id)
		}
	}
}

func TestUID(t *testing.T) {
	seen := map[uint32]string{}
	for i := range 2000 {
		user := "user-" + strconv.Itoa(i)
		u := UID("call-1", user)
		if u == 0 {
			t.Fatal("uid 0")
		}
		if u != UID("call-1", user) {
			t.Fatal("uid is not stable")
		}
		if prev, dup := seen[u]; dup {
			t.Logf("collision %s %s (possible, rare)", prev, user)
		}
		seen[u] = user
	}
	if UID("call-1", "ada") == UID("call-2", "ada") {
		t.Error("same uid in two calls")
	}
	// The separator keeps ("a", "bc") and ("ab", "c") apart.
	if UID("a", "bc") == UID("ab", "c") {
		t.Error("call and user run together")
	}
	// Pinned so the derivation cannot change unnoticed (people rejoining a
	// running call across an upgrade would get a second uid).
	if got := UID("call-1", "ada"); got != pinnedUID {
		t.Errorf("UID(call-1, ada) = %d, want %d", got, pinnedUID)
	}
}

func TestCredentialPerRole(t *testing.T) {
	ctx := context.Background()
	room := calls.Room{Name: "call-1"}
	for _, tc := range []struct {
		role      calls.Role
		publisher bool
	}{
		{calls.RoleOwner, true}, {calls.RolePanelist, true}, {calls.RolePresenter, true},
		{calls.RoleCoPresenter, true}, {calls.RolePromoted, true}, {calls.RoleParticipant, true},
		{calls.RoleListener, false},
	} {
		for _, rtm := range []bool{false, true} {
			t.Run(string(tc.role)+map[bool]string{true: "+rtm"}[rtm], func(t *testing.T) {
				p := newTest(t, Config{RTM: rtm, TokenTTL: 30 * time.Minute})
				cred, err := p.Credential(ctx, room, calls.CredentialRequest{CallID: "call-1", UserID: "ada", Name: "Ada", Role: tc.role, TTL: time.Hour, IssuedAt: issued})
				if err != nil {
					t.Fatal(err)
				}
				uid := UID("call-1", "ada")
				want := map[string]any{"agora_app_id": testAppID, "agora_uid": uid, "channel": "call-1"}
				if rtm {
					want["rtm_token"], want["rtm_user_id"] = cred.Token, "ada"
				}
				if !reflect.DeepEqual(cred.Fields, want) {
					t.Errorf("fields %v, want %v", cred.Fields, want)
				}
				if !cred.ExpiresAt.Equal(issued.Add(30*time.Minute)) || cred.JoinURL != "" {
					t.Errorf("expires %s, join url %q", cred.ExpiresAt, cred.JoinURL)
				}

				d, err := decodeToken(cred.Token)
				if err != nil {
					t.Fatal(err)
				}
				if !d.verify(testCert) {
					t.Fatal("HMAC does not verify")
				}
				if d.AppID != testAppID || d.IssueTs != uint32(issued.Unix()) || d.Expire != 1800 || d.Salt < 1 || d.Salt >= saltLimit {
					t.Errorf("header %+v", d)
				}
				privs := map[uint16]uint32{1: 1800}
				if tc.publisher {
					privs = map[uint16]uint32{1: 1800, 2: 1800, 3: 1800, 4: 1800}
				}
				rtc, _ := d.service(serviceRTC)
				if !reflect.DeepEqual(rtc, tokenService{Type: 1, Privileges: privs, Extras: []string{"call-1", strconv.FormatUint(uint64(uid), 10)}}) {
					t.Errorf("rtc %+v", rtc)
				}
				rtmSvc, has := d.service(serviceRTM)
				if has != rtm || (rtm && !reflect.DeepEqual(rtmSvc, tokenService{Type: 2, Privileges: map[uint16]uint32{1: 1800}, Extras: []string{"ada"}})) {
					t.Errorf("rtm %v %+v", has, rtmSvc)
				}
			})
		}
	}
}

func TestCredentialTTLAndErrors(t *testing.T) {
	ctx := context.Background()
	room := calls.Room{Name: "call-1"}
	req := calls.CredentialRequest{CallID: "call-1", UserID: "ada", Role: calls.RoleParticipant}
	ttlOf := func(p *Provider, r calls.CredentialRequest) uint32 {
		t.Helper()
		cred, err := p.Credential(ctx, room, r)
		if err != nil {
			t.Fatal(err)
		}
		d, err := decodeToken(cred.Token)
		if err != nil {
			t.Fatal(err)
		}
		if !cred.ExpiresAt.Equal(time.Unix(int64(d.IssueTs)+int64(d.Expire), 0)) {
			t.Errorf("ExpiresAt %s vs token %d+%d", cred.ExpiresAt, d.IssueTs, d.Expire)
		}
		return d.Expire
	}
	// The block's token_ttl wins; 0 follows the request (calls.token_ttl);
	// nothing at all is an hour; the clock gives the issue time.
	if got := ttlOf(newTest(t, Config{TokenTTL: 10 * time.Minute}), withTTL(req, time.Hour)); got != 600 {
		t.Errorf("block ttl: %d", got)
	}
	if got := ttlOf(newTest(t, Config{}), withTTL(req, 2*time.Hour)); got != 7200 {
		t.Errorf("request ttl: %d", got)
	}
	if got := ttlOf(newTest(t, Config{}), req); got != 3600 {
		t.Errorf("default ttl: %d", got)
	}
	if got := ttlOf(newTest(t, Config{}), withTTL(req, 48*time.Hour)); got != 86400 {
		t.Errorf("capped ttl: %d", got)
	}

	p := newTest(t, Config{})
	// Two tokens for one person differ (fresh salt) but carry the same uid.
	a, _ := p.Credential(ctx, room, req)
	b, _ := p.Credential(ctx, room, req)
	if a.Token == b.Token || a.Fields["agora_uid"] != b.Fields["agora_uid"] {
		t.Error("salt not fresh or uid not stable")
	}
	// Without a call id the channel keys the uid.
	c, _ := p.Credential(ctx, room, calls.CredentialRequest{UserID: "ada"})
	if c.Fields["agora_uid"] != a.Fields["agora_uid"] {
		t.Error("uid without call id differs")
	}

	for name, tc := range map[string]struct {
		room calls.Room
		req  calls.CredentialRequest
	}{
		"no channel":   {calls.Room{}, req},
		"no user":      {room, calls.CredentialRequest{CallID: "call-1"}},
		"negative ttl": {room, withTTL(req, -time.Second)},
		"before 1970":  {room, calls.CredentialRequest{UserID: "ada", IssuedAt: time.Unix(-5, 0)}},
	} {
		if _, err := p.Credential(ctx, tc.room, tc.req); !errors.Is(err, calls.ErrInvalidInput) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func withTTL(r calls.CredentialRequest, d time.Duration) calls.CredentialRequest {
	r.TTL = d
	return r
}

func TestJoinURLTemplate(t *testing.T) {
	p := newTest(t, Config{JoinURLTemplate: "https://app.example/call?appid={{.AppID}}&channel={{.Room}}&uid={{.UID}}&user={{urlquery .Identity}}&token={{urlquery .Token}}"})
	cred, err := p.Credential(context.Background(), calls.Room{Name: "call-1"}, calls.CredentialRequest{CallID: "call-1", UserID: "a b", Role: calls.RoleOwner})
	if err != nil {
		t.Fatal(err)
	}
	want := "https://app.example/call?appid=" + testAppID + "&channel=call-1&uid=" + strconv.FormatUint(uint64(UID("call-1", "a b")), 10) +
		"&user=a+b&token=" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(cred.Token)
	if cred.JoinURL != want {
		t.Errorf("join url\n got %s\nwant %s", cred.JoinURL, want)
	}

	bad := newTest(t, Config{JoinURLTemplate: "{{.Nope}}"})
	_, err = bad.Credential(context.Background(), calls.Room{Name: "call-1"}, calls.CredentialRequest{UserID: "ada"})
	if !errors.Is(err, calls.ErrProvider) || strings.Contains(err.Error(), testCert) {
		t.Errorf("bad template: %v", err)
	}
}

func TestResolveIdentityMapsUIDsToMembers(t *testing.T) {
	p := &Provider{}
	c := &calls.Call{ID: "standup", Members: []calls.Member{{UserID: "slack:U1"}, {UserID: "ada"}}}
	uid := strconv.FormatUint(uint64(UID("standup", "ada")), 10)
	if got, ok := p.ResolveIdentity(c, uid); !ok || got != "ada" {
		t.Fatalf("ResolveIdentity(%s) = %q, %v; want ada", uid, got, ok)
	}
	if _, ok := p.ResolveIdentity(c, "12345"); ok {
		t.Fatal("a guest's uid resolved to a member")
	}
	var _ calls.IdentityResolver = p
}
