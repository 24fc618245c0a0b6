package calls_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store"
)

// scriptedProvider stands in for a remote provider: it records what it was
// asked and fails when told to.
type scriptedProvider struct {
	creates, ends atomic.Int32
	failCreate    error
	delay         time.Duration
}

func (p *scriptedProvider) CreateRoom(ctx context.Context, req calls.RoomRequest) (calls.Room, error) {
	p.creates.Add(1)
	if p.delay > 0 {
		select {
		case <-time.After(p.delay):
		case <-ctx.Done():
			return calls.Room{}, ctx.Err()
		}
	}
	if p.failCreate != nil {
		return calls.Room{}, p.failCreate
	}
	return calls.Room{Name: "room-" + req.CallID, URL: "https://provider.test/room-" + req.CallID}, nil
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
	now      *atomic.Pointer[time.Time]
}

func newFixture(t *testing.T, cfg calls.ServiceConfig) fixture {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), t.TempDir()+"/calls.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := &scriptedProvider{}
	now := &atomic.Pointer[time.Time]{}
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	now.Store(&start)
	cfg.Store = st
	cfg.Providers = map[string]calls.Provider{"p": p}
	cfg.DefaultProvider = "p"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Now = func() time.Time { return *now.Load() }
	svc, err := calls.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{svc: svc, store: st, provider: p, now: now}
}

func (f fixture) advance(d time.Duration) {
	t := f.now.Load().Add(d)
	f.now.Store(&t)
}

func TestConcurrentCreatesMakeOneCallAndOneRoom(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	f.provider.delay = 20 * time.Millisecond
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
			_, isNew, err := f.svc.Create(context.Background(), calls.Actor{Admin: true}, calls.CreateRequest{ID: id})
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
	if created.Load() != 1 || f.provider.creates.Load() != 1 {
		t.Fatalf("created %d calls and %d rooms, want 1 and 1", created.Load(), f.provider.creates.Load())
	}
	c, err := f.svc.Get(context.Background(), "RACE-1")
	if err != nil || c.Room.Name != "room-race-1" {
		t.Fatalf("stored call %+v, %v", c, err)
	}
}

func TestProviderFailureLeavesAVisibleFailedCall(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	f.provider.failCreate = errors.New("503 from provider (secret=hunter2)")
	c, created, err := f.svc.Create(context.Background(), calls.Actor{Admin: true}, calls.CreateRequest{ID: "doomed"})
	if !errors.Is(err, calls.ErrProvider) || !created {
		t.Fatalf("Create error = %v created=%v, want ErrProvider", err, created)
	}
	if c.State != calls.StateFailed || c.EndReason != "provider_error" {
		t.Fatalf("call = %s/%s, want failed/provider_error", c.State, c.EndReason)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatal("the provider's error text (which may hold secrets) reached the caller")
	}
	stored, _ := f.svc.Get(context.Background(), "doomed")
	if stored.State != calls.StateFailed {
		t.Fatalf("stored state %s", stored.State)
	}
	if _, _, err := f.svc.Credential(context.Background(), calls.Actor{Admin: true}, "doomed", calls.JoinRequest{UserID: "u"}); !errors.Is(err, calls.ErrCallEnded) {
		t.Fatalf("credential for a failed call: %v", err)
	}
}

func TestMaxDurationEndsCallsAndRooms(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{MaxDuration: time.Hour})
	ctx := context.Background()
	f.svc.Create(ctx, calls.Actor{Admin: true}, calls.CreateRequest{ID: "long"})
	f.advance(30 * time.Minute)
	f.svc.Create(ctx, calls.Actor{Admin: true}, calls.CreateRequest{ID: "short"})
	f.advance(31 * time.Minute)
	n, err := f.svc.ExpireOnce(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ExpireOnce = %d, %v; want 1", n, err)
	}
	long, _ := f.svc.Get(ctx, "long")
	short, _ := f.svc.Get(ctx, "short")
	if long.State != calls.StateEnded || long.EndReason != calls.ReasonMaxDuration || short.State != calls.StateCreated {
		t.Fatalf("long=%s/%s short=%s", long.State, long.EndReason, short.State)
	}
	if f.provider.ends.Load() != 1 {
		t.Fatalf("provider rooms ended: %d, want 1", f.provider.ends.Load())
	}
}

func TestEventsArePublishedAfterStoring(t *testing.T) {
	f := newFixture(t, calls.ServiceConfig{})
	ctx := context.Background()
	sub, stop := f.svc.Bus().Subscribe(16)
	defer stop()
	f.svc.Create(ctx, calls.Actor{UserID: "ada"}, calls.CreateRequest{ID: "ev", Ring: true, Members: []calls.Member{{UserID: "bob"}}})
	f.svc.Accept(ctx, calls.Actor{UserID: "bob"}, "ev")
	f.svc.End(ctx, calls.Actor{UserID: "ada"}, "ev")
	want := []calls.EventKind{calls.EventCreated, calls.EventUpdated, calls.EventRinging, calls.EventAccepted, calls.EventEnded}
	stored, err := f.store.Events(ctx, "ev", 0)
	if err != nil || len(stored) != len(want) {
		t.Fatalf("stored events %v, %v", stored, err)
	}
	for i, k := range want {
		select {
		case n := <-sub:
			// Published events carry the sequence number the log gave them.
			if n.Event.Seq == 0 || n.Event.Seq != stored[i].Seq {
				t.Fatalf("notification %d has seq %d, stored seq %d", i, n.Event.Seq, stored[i].Seq)
			}
			if n.Event.Kind != k || n.Call.ID != "ev" {
				t.Fatalf("notification %d = %s for %s, want %s", i, n.Event.Kind, n.Call.ID, k)
			}
			if k == calls.EventEnded && (n.Call.State != calls.StateEnded || n.Event.Actor != "ada") {
				t.Fatalf("ended notification carries %+v", n)
			}
		case <-time.After(time.Second):
			t.Fatalf("notification %d (%s) never came", i, k)
		}
	}
}

// flakyStore fails the next UpdateCall, as a database hiccup would.
type flakyStore struct {
	*store.SQL
	failNext atomic.Bool
}

func (s *flakyStore) UpdateCall(ctx context.Context, id string, change func(*calls.Call) ([]calls.Event, error)) (calls.Call, error) {
	if s.failNext.CompareAndSwap(true, false) {
		return calls.Call{}, errors.New("database is locked")
	}
	return s.SQL.UpdateCall(ctx, id, change)
}

func TestProviderEventsAreAppliedOnceAndRetriedAfterFailure(t *testing.T) {
	base := newFixture(t, calls.ServiceConfig{})
	flaky := &flakyStore{SQL: base.store}
	svc, err := calls.NewService(calls.ServiceConfig{Store: flaky, Providers: map[string]calls.Provider{"p": base.provider}, DefaultProvider: "p",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svc.Create(ctx, calls.Actor{Admin: true}, calls.CreateRequest{ID: "r"})
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
	if c, _ := svc.Get(ctx, "r"); len(c.Participants) != 1 || c.State != calls.StateActive {
		t.Fatalf("retry not applied: %+v", c)
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
