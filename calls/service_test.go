package calls_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store"
	"github.com/callgate/callgate/store/pgtest"
)

// scriptedProvider stands in for a remote provider. Rooms are keyed by call
// id, as a real provider's idempotent create is: creating twice for one
// call id returns the same room, and rooms counts distinct rooms.
type scriptedProvider struct {
	mu       sync.Mutex
	rooms    map[string]calls.Room
	attempts atomic.Int32
	ends     atomic.Int32
	// script holds the errors the next attempts return, in order.
	script []error
	// gate, when set, blocks CreateRoom until closed.
	gate chan struct{}
}

func newScriptedProvider() *scriptedProvider {
	return &scriptedProvider{rooms: map[string]calls.Room{}}
}

func (p *scriptedProvider) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	p.attempts.Add(1)
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return calls.Room{}, calls.Temporary(ctx.Err(), 0)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.script) > 0 {
		err := p.script[0]
		p.script = p.script[1:]
		if err != nil {
			return calls.Room{}, err
		}
	}
	if r, ok := p.rooms[req.CallID]; ok {
		return r, nil
	}
	r := calls.Room{Name: "room-" + req.CallID, URL: "https://provider.test/room-" + req.CallID}
	p.rooms[req.CallID] = r
	return r, nil
}

func (p *scriptedProvider) roomCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rooms)
}

func (p *scriptedProvider) Credential(_ context.Context, room calls.Room, req calls.CredentialRequest) (calls.Credential, error) {
	return calls.Credential{JoinURL: room.URL, Token: "tok-" + req.UserID, ExpiresAt: req.IssuedAt.Add(req.TTL)}, nil
}

func (p *scriptedProvider) EndRoom(context.Context, calls.Room) error {
	p.ends.Add(1)
	return nil
}

type fixture struct {
	svc      *calls.Service
	store    *store.SQL
	provider *scriptedProvider
	rooms    *calls.RoomWorker
	now      *atomic.Pointer[time.Time]
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newFixture(t *testing.T, cfg calls.ServiceConfig) fixture {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), t.TempDir()+"/calls.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFixtureOn(t, st, cfg)
}

func newFixtureOn(t *testing.T, st *store.SQL, cfg calls.ServiceConfig) fixture {
	t.Helper()
	p := newScriptedProvider()
	now := &atomic.Pointer[time.Time]{}
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	now.Store(&start)
	clock := func() time.Time { return *now.Load() }
	cfg.Store = st
	cfg.Providers = map[string]calls.Provider{"p": p}
	cfg.DefaultProvider = "p"
	cfg.Logger = quiet
	cfg.Now = clock
	if cfg.RoomWait == 0 {
		cfg.RoomWait = 50 * time.Millisecond
	}
	svc, err := calls.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rooms := calls.NewRoomWorker(calls.RoomWorkerConfig{
		Store: st, Providers: cfg.Providers, Wake: svc.Wake(), Logger: quiet, Owner: "w1", Now: clock,
	})
	return fixture{svc: svc, store: st, provider: p, rooms: rooms, now: now}
}

func (f fixture) advance(d time.Duration) {
	t := f.now.Load().Add(d)
	f.now.Store(&t)
}

// work runs the room worker until no job is due now.
func (f fixture) work(t *testing.T) {
	t.Helper()
	for range 20 {
		n, err := f.rooms.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("room jobs never ran out")
}

var admin = calls.APIKeyActor("")

func TestConcurrentCreatesMakeOneCallAndOneRoom(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	var created atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "Race-1"
			if i%2 == 0 {
				id = "race-1"
			}
			_, isNew, err := f.svc.Create(context.Background(), admin, calls.CreateRequest{ID: id})
			if err != nil {
				errs <- err
			}
			if isNew {
				created.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	f.work(t)
	if created.Load() != 1 || f.provider.attempts.Load() != 1 {
		t.Fatalf("created %d calls and asked for %d rooms, want 1 and 1", created.Load(), f.provider.attempts.Load())
	}
	c, err := f.svc.Get(context.Background(), "RACE-1")
	if err != nil || c.Room.Name != "room-race-1" {
		t.Fatalf("stored call %+v, %v", c, err)
	}
}

// A provider that blocks does not block the request: Create returns with
// the room being prepared, a credential request waits briefly and then says
// to retry, and once the worker has the room credentials work.
func TestRoomCreationIsOffTheRequestPath(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	f.provider.gate = make(chan struct{})
	ctx := context.Background()
	c, created, err := f.svc.Create(ctx, calls.UserActor("ada"), calls.CreateRequest{ID: "slow"})
	if err != nil || !created {
		t.Fatalf("create: %v", err)
	}
	if c.RoomStatus() != "preparing" {
		t.Fatalf("room status %q right after create, want preparing", c.RoomStatus())
	}
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		f.rooms.RunOnce(ctx)
	}()
	_, _, err = f.svc.Credential(ctx, calls.UserActor("ada"), "slow", calls.JoinRequest{})
	if !errors.Is(err, calls.ErrRoomNotReady) {
		t.Fatalf("credential while the room is created: %v, want ErrRoomNotReady", err)
	}
	close(f.provider.gate)
	<-workerDone
	_, cred, err := f.svc.Credential(ctx, calls.UserActor("ada"), "slow", calls.JoinRequest{})
	if err != nil || cred.JoinURL != "https://provider.test/room-slow" {
		t.Fatalf("credential after the room exists: %+v, %v", cred, err)
	}
}

// A credential request that arrives while the room is being created gets
// it as soon as the worker stores it, within RoomWait.
func TestCredentialWaitsForTheRoom(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{RoomWait: 10 * time.Second})
	ctx := context.Background()
	f.svc.Create(ctx, calls.UserActor("ada"), calls.CreateRequest{ID: "waiter"})
	got := make(chan error, 1)
	go func() {
		_, _, err := f.svc.Credential(ctx, calls.UserActor("ada"), "waiter", calls.JoinRequest{})
		got <- err
	}()
	f.work(t)
	if err := <-got; err != nil {
		t.Fatalf("credential: %v", err)
	}
}

func TestRoomCreationRetriesTemporaryFailures(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	unavailable := calls.Temporary(errors.New("503 Service Unavailable"), 0)
	f.provider.script = []error{unavailable, unavailable}
	ctx := context.Background()
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "flaky"})
	for range 3 {
		f.work(t)
		f.advance(time.Minute / 4)
	}
	c, _ := f.svc.Get(ctx, "flaky")
	if c.Room.Name != "room-flaky" || c.State.Terminal() {
		t.Fatalf("after two 503s and a success: %+v", c)
	}
	if f.provider.attempts.Load() != 3 || f.provider.roomCount() != 1 {
		t.Fatalf("%d attempts made %d rooms, want 3 attempts and 1 room", f.provider.attempts.Load(), f.provider.roomCount())
	}
}

func TestRoomCreationBackoffHonoursRetryAfter(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	f.provider.script = []error{calls.Temporary(errors.New("429"), 20*time.Second)}
	ctx := context.Background()
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "paced"})
	f.work(t)
	f.advance(19 * time.Second)
	f.work(t)
	if n := f.provider.attempts.Load(); n != 1 {
		t.Fatalf("%d attempts before Retry-After passed, want 1", n)
	}
	f.advance(5 * time.Second)
	f.work(t)
	if c, _ := f.svc.Get(ctx, "paced"); c.Room.Name == "" {
		t.Fatalf("no room after Retry-After: %+v", c)
	}
}

func TestPermanentProviderFailureFailsTheCallReadably(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	f.provider.script = []error{calls.Permanent("the provider refused the API key (HTTP 401)", errors.New(`{"error":"bad key sk_live_123"}`))}
	ctx := context.Background()
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "doomed"})
	f.work(t)
	c, _ := f.svc.Get(ctx, "doomed")
	if c.State != calls.StateFailed || c.EndReason != calls.ReasonProviderError {
		t.Fatalf("call %s (%s), want failed (provider_error)", c.State, c.EndReason)
	}
	if !strings.Contains(c.Room.Error, "refused the API key (HTTP 401)") || strings.Contains(c.Room.Error, "sk_live") {
		t.Fatalf("room error %q: want the admin reason without the provider's raw reply", c.Room.Error)
	}
	if f.provider.attempts.Load() != 1 {
		t.Fatalf("a permanent failure was retried (%d attempts)", f.provider.attempts.Load())
	}
	if _, _, err := f.svc.Credential(ctx, admin, "doomed", calls.JoinRequest{UserID: "ada"}); !errors.Is(err, calls.ErrCallEnded) {
		t.Fatalf("credential on a failed call: %v", err)
	}
}

func TestRoomCreationGivesUpAfterItsBudget(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	for range 20 {
		f.provider.script = append(f.provider.script, calls.Temporary(errors.New("connection refused"), 0))
	}
	ctx := context.Background()
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "down"})
	for range 20 {
		f.work(t)
		f.advance(15 * time.Second)
	}
	c, _ := f.svc.Get(ctx, "down")
	if c.State != calls.StateFailed || !strings.Contains(c.Room.Error, "temporary failures") {
		t.Fatalf("call %s, room error %q", c.State, c.Room.Error)
	}
}

// A worker that claims a job and dies holds it only until its lease ends;
// another worker (another replica, or the restarted process) then creates
// the room. The store reopened from disk still has the job.
func TestRoomJobSurvivesACrashedWorker(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, dir+"/calls.db")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOn(t, st, calls.ServiceConfig{})
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "orphan"})
	// The dying worker claims the job and never comes back.
	if jobs, err := st.ClaimRoomJobs(ctx, "dead-worker", *f.now.Load(), time.Minute, 10); err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v %v", jobs, err)
	}
	st.Close()

	st2, err := store.OpenSQLite(ctx, dir+"/calls.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	g := newFixtureOn(t, st2, calls.ServiceConfig{})
	g.now.Store(f.now.Load())
	g.work(t)
	if c, _ := g.svc.Get(ctx, "orphan"); c.Room.Name != "" {
		t.Fatal("a leased job was taken before its lease expired")
	}
	g.advance(2 * time.Minute)
	g.work(t)
	if c, _ := g.svc.Get(ctx, "orphan"); c.Room.Name != "room-orphan" {
		t.Fatalf("after the lease expired: %+v", c)
	}
}

// A call that ends while its room is being created keeps no room, and the
// room the provider made is closed again.
func TestEndedBeforeRoomClosesTheLateRoom(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	f.provider.gate = make(chan struct{})
	ctx := context.Background()
	f.svc.Create(ctx, calls.UserActor("ada"), calls.CreateRequest{ID: "brief"})
	done := make(chan struct{})
	go func() { defer close(done); f.rooms.RunOnce(ctx) }()
	for f.provider.attempts.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := f.svc.End(ctx, calls.UserActor("ada"), "brief"); err != nil {
		t.Fatal(err)
	}
	close(f.provider.gate)
	<-done
	c, _ := f.svc.Get(ctx, "brief")
	if c.State != calls.StateEnded || c.Room.Name != "" || f.provider.ends.Load() != 1 {
		t.Fatalf("call %s room %q, %d rooms ended", c.State, c.Room.Name, f.provider.ends.Load())
	}
}

func TestMaxDurationEndsCallsAndRooms(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{MaxDuration: time.Hour})
	ctx := context.Background()
	f.svc.Create(ctx, admin, calls.CreateRequest{ID: "long"})
	f.work(t)
	f.advance(59 * time.Minute)
	if n, err := f.svc.ExpireOnce(ctx); err != nil || n != 0 {
		t.Fatalf("expired %d early (%v)", n, err)
	}
	f.advance(2 * time.Minute)
	if n, err := f.svc.ExpireOnce(ctx); err != nil || n != 1 {
		t.Fatalf("expired %d (%v), want 1", n, err)
	}
	c, _ := f.svc.Get(ctx, "long")
	if c.State != calls.StateEnded || c.EndReason != calls.ReasonMaxDuration || f.provider.ends.Load() != 1 {
		t.Fatalf("call %s/%s, %d rooms ended", c.State, c.EndReason, f.provider.ends.Load())
	}
}

// flakyStore fails the next UpdateCall or ApplyCall, as a database
// hiccup would.
type flakyStore struct {
	*store.SQL
	failNext atomic.Bool
}

func (s *flakyStore) UpdateCall(ctx context.Context, id string, mark *calls.DeliveryMark, change func(*calls.Call) ([]calls.Event, error)) (calls.Call, error) {
	if s.failNext.CompareAndSwap(true, false) {
		return calls.Call{}, errors.New("database is locked")
	}
	return s.SQL.UpdateCall(ctx, id, mark, change)
}

func (s *flakyStore) ApplyCall(ctx context.Context, id string, mark *calls.DeliveryMark, change func(*calls.Call) ([]calls.Event, error)) error {
	if s.failNext.CompareAndSwap(true, false) {
		return errors.New("database is locked")
	}
	return s.SQL.ApplyCall(ctx, id, mark, change)
}

func TestProviderEventsAreAppliedOnceAndRetriedAfterFailure(t *testing.T) {
	base := newFixture(t, calls.ServiceConfig{})
	ctx := context.Background()
	base.svc.Create(ctx, admin, calls.CreateRequest{ID: "r"})
	base.work(t)
	flaky := &flakyStore{SQL: base.store}
	svc, err := calls.NewService(calls.ServiceConfig{Store: flaky, Providers: map[string]calls.Provider{"p": base.provider}, DefaultProvider: "p", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	join := calls.ProviderEvent{DeliveryID: "d1", Kind: calls.ProviderParticipantJoined, Room: "room-r", Identity: "ada", Seq: 10}

	flaky.failNext.Store(true)
	if err := svc.ApplyProviderEvents(ctx, "p", []calls.ProviderEvent{join}); err == nil {
		t.Fatal("a failed apply reported success; the provider would not retry")
	}
	if c, _ := svc.Get(ctx, "r"); len(c.Participants) != 0 {
		t.Fatal("failed apply changed the roster")
	}
	// The provider retries the same delivery: it must be applied, not skipped.
	if err := svc.ApplyProviderEvents(ctx, "p", []calls.ProviderEvent{join}); err != nil {
		t.Fatal(err)
	}
	c, _ := svc.Get(ctx, "r")
	if len(c.Participants) != 1 || c.State != calls.StateActive {
		t.Fatalf("retry not applied: %+v", c)
	}
	// The joined event is recorded with the state the call is in after it.
	evs, _ := base.store.Events(ctx, "r", 0)
	last := evs[len(evs)-1]
	if last.Kind != calls.EventJoined || last.State != calls.StateActive || evs[len(evs)-2].Kind != calls.EventActive {
		t.Fatalf("events end with %+v", evs[len(evs)-2:])
	}
	// A re-delivery after a leave (seq 0 providers rely on this) is skipped.
	leave := calls.ProviderEvent{DeliveryID: "d2", Kind: calls.ProviderParticipantLeft, Room: "room-r", Identity: "ada"}
	if err := svc.ApplyProviderEvents(ctx, "p", []calls.ProviderEvent{leave, {DeliveryID: "d1", Kind: calls.ProviderParticipantJoined, Room: "room-r", Identity: "ada"}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := svc.Get(ctx, "r"); len(c.Participants) != 0 {
		t.Fatalf("duplicate delivery re-applied: %+v", c.Participants)
	}
	// Rooms callgate did not create are acknowledged and ignored.
	if err := svc.ApplyProviderEvents(ctx, "p", []calls.ProviderEvent{{Kind: calls.ProviderRoomEnded, Room: "someone-elses"}}); err != nil {
		t.Fatal(err)
	}
}

// Mallory, with her own user token, cannot add herself a surface on, read,
// or change Alice's call; a refused request writes nothing.
func TestStrangersChangeAndLearnNothing(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{GuestJoin: true})
	ctx := context.Background()
	alice, mallory := calls.UserActor("alice"), calls.UserActor("mallory")
	f.svc.Create(ctx, alice, calls.CreateRequest{ID: "alice-call", Title: "Board Q3"})
	before, _ := f.store.Events(ctx, "alice-call", 0)
	for name, try := range map[string]func() error{
		"create again": func() error {
			_, _, err := f.svc.Create(ctx, mallory, calls.CreateRequest{ID: "alice-call"})
			return err
		},
		"create with a surface": func() error {
			_, _, err := f.svc.Create(ctx, mallory, calls.CreateRequest{ID: "alice-call", Surfaces: []calls.Surface{{Chat: "stream-api", Channel: "messaging:mallory-chan"}}})
			return err
		},
		"view": func() error { _, err := f.svc.View(ctx, mallory, "alice-call"); return err },
		"join": func() error {
			_, _, err := f.svc.Credential(ctx, mallory, "alice-call", calls.JoinRequest{})
			return err
		},
		"end":    func() error { _, err := f.svc.End(ctx, mallory, "alice-call"); return err },
		"accept": func() error { _, err := f.svc.Accept(ctx, mallory, "alice-call"); return err },
		"act as alice": func() error {
			_, _, err := f.svc.Credential(ctx, mallory, "alice-call", calls.JoinRequest{UserID: "alice"})
			return err
		},
		"retry deliveries": func() error { _, err := f.svc.RetryDeliveries(ctx, mallory, "alice-call", nil); return err },
	} {
		err := try()
		if !errors.Is(err, calls.ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "Board Q3") {
			t.Errorf("%s: the error names the call's title: %v", name, err)
		}
	}
	after, _ := f.store.Events(ctx, "alice-call", 0)
	c, _ := f.svc.Get(ctx, "alice-call")
	if len(after) != len(before) || len(c.Surfaces) != 0 {
		t.Fatalf("refused requests wrote: %d events (was %d), surfaces %+v", len(after), len(before), c.Surfaces)
	}
}

// Guests are admitted only to calls whose id the gateway generated, or
// whose creator asked for guests, and only when guests are allowed at all.
func TestGuestsNeedAnUnguessableIdOrAnOptIn(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name      string
		allow     bool
		id        string
		guests    *bool
		wantGuest bool
	}{
		{"generated id", true, "", nil, true},
		{"chosen id", true, "standup", nil, false},
		{"chosen id, opted in", true, "standup", &yes, true},
		{"generated id, opted out", true, "", &no, false},
		{"guests off, opted in", false, "standup", &yes, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, calls.ServiceConfig{GuestJoin: tc.allow})
			ctx := context.Background()
			c, _, err := f.svc.Create(ctx, calls.UserActor("ada"), calls.CreateRequest{ID: tc.id, Guests: tc.guests})
			if err != nil {
				t.Fatal(err)
			}
			f.work(t)
			guest := calls.Actor{Kind: calls.ActorGuest, UserID: "guest-1"}
			_, _, err = f.svc.Credential(ctx, guest, c.ID, calls.JoinRequest{})
			if got := err == nil; got != tc.wantGuest {
				t.Fatalf("guest joined: %v (err %v), want %v", got, err, tc.wantGuest)
			}
		})
	}
}

// eachStore runs fn on SQLite and, when CALLGATE_TEST_POSTGRES is set, on
// PostgreSQL.
func eachStore(t *testing.T, fn func(t *testing.T, st *store.SQL)) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := store.OpenSQLite(context.Background(), t.TempDir()+"/calls.db")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := store.OpenPostgres(context.Background(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st)
	})
}

// Bob's accept and Alice's cancel sent at once: exactly one wins, and the
// log never shows both. The guard runs inside the transaction that makes
// the change, on both stores.
func TestAcceptRacingCancelHasOneWinner(t *testing.T) {
	eachStore(t, testAcceptRacingCancel)
}

func testAcceptRacingCancel(t *testing.T, st *store.SQL) {
	f := newFixtureOn(t, st, calls.ServiceConfig{})
	ctx := context.Background()
	for i := range 200 {
		id := fmt.Sprintf("race-%d", i)
		f.svc.Create(ctx, calls.UserActor("alice"), calls.CreateRequest{ID: id, Ring: true, Members: []calls.Member{{UserID: "bob"}}})
		var wg sync.WaitGroup
		var acceptErr, cancelErr error
		wg.Add(2)
		go func() { defer wg.Done(); _, acceptErr = f.svc.Accept(ctx, calls.UserActor("bob"), id) }()
		go func() { defer wg.Done(); _, cancelErr = f.svc.Decline(ctx, calls.UserActor("alice"), id) }()
		wg.Wait()
		if (acceptErr == nil) == (cancelErr == nil) {
			t.Fatalf("trial %d: accept %v, cancel %v: want exactly one to succeed", i, acceptErr, cancelErr)
		}
		c, _ := f.svc.Get(ctx, id)
		if (acceptErr == nil && c.State != calls.StateAccepted) || (cancelErr == nil && c.State != calls.StateEnded) {
			t.Fatalf("trial %d: state %s after accept %v / cancel %v", i, c.State, acceptErr, cancelErr)
		}
	}
}

// instantProvider is a scriptedProvider whose rooms are names
// (calls.InstantRoomProvider), as Jitsi's and Agora's are; instant says
// whether it claims so.
type instantProvider struct {
	*scriptedProvider
	instant bool
}

func (p instantProvider) InstantRooms() bool { return p.instant }

// TestInstantRoomsAreMadeWithTheCall: a provider whose rooms are names gets
// its room in the transaction that stores the call (ready at once, no room
// job, no second version); one that says no, or does not implement the
// capability, still goes through the room worker; a room that cannot be
// named refuses the create and stores nothing.
func TestInstantRoomsAreMadeWithTheCall(t *testing.T) {
	for _, tc := range []struct {
		name      string
		instant   bool
		script    []error
		wantReady bool
		wantJobs  int64
		wantErr   error
	}{
		{name: "instant", instant: true, wantReady: true, wantJobs: 0},
		{name: "says no", instant: false, wantReady: false, wantJobs: 1},
		{name: "instant, refused", instant: true, script: []error{fmt.Errorf("%w: no name", calls.ErrInvalidInput)}, wantErr: calls.ErrInvalidInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.OpenSQLite(context.Background(), t.TempDir()+"/calls.db")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			p := instantProvider{scriptedProvider: newScriptedProvider(), instant: tc.instant}
			p.script = tc.script
			svc, err := calls.NewService(calls.ServiceConfig{Store: st, Providers: map[string]calls.Provider{"p": p}, DefaultProvider: "p", Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			actor := calls.Actor{Kind: calls.ActorAPIKey, UserID: "alice"}
			c, created, err := svc.Create(t.Context(), actor, calls.CreateRequest{ID: "instant-1", Type: "video"})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("create: %v, want %v", err, tc.wantErr)
				}
				if _, err := st.GetCall(t.Context(), "instant-1"); !errors.Is(err, calls.ErrNotFound) {
					t.Fatalf("a refused create stored a call: %v", err)
				}
				return
			}
			if err != nil || !created {
				t.Fatalf("create: %v created=%v", err, created)
			}
			if got := c.RoomStatus() == "ready"; got != tc.wantReady {
				t.Fatalf("room status %q, ready wanted: %v", c.RoomStatus(), tc.wantReady)
			}
			if tc.wantReady && (c.Room.Name != "room-instant-1" || c.Version != 1) {
				t.Fatalf("room %+v at version %d, want the provider's room at version 1", c.Room, c.Version)
			}
			if n, err := st.CountRoomJobs(t.Context()); err != nil || n != tc.wantJobs {
				t.Fatalf("room jobs = %d (%v), want %d", n, err, tc.wantJobs)
			}
			if got := p.attempts.Load(); tc.wantReady && got != 1 || !tc.wantReady && got != 0 {
				t.Fatalf("provider asked %d times", got)
			}
		})
	}
}
