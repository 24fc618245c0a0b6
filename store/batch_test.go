package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgate/callgate/calls"
)

// holdWriter runs a write that blocks the SQLite group writer until the
// returned release is called, so that writes submitted meanwhile queue up
// and run as one batch.
func holdWriter(t *testing.T, s *SQL, id string) (release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	go func() {
		_, err := s.UpdateCall(t.Context(), id, nil, func(c *calls.Call) ([]calls.Event, error) {
			close(entered)
			<-gate
			return nil, nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	<-entered
	return sync.OnceFunc(func() { close(gate) })
}

// openBatchStore opens a SQLite store in a fresh file, closed when the
// test ends (closing it earlier too is harmless), and returns its path
// for reopening.
func openBatchStore(t *testing.T) (*SQL, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "batch.db")
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// openEngine opens a fresh store of the engine (PostgreSQL: a schema of
// its own; skipped without CALLGATE_TEST_POSTGRES), closed when the test
// ends, and a function that closes it and opens the same data again, so
// that what the test reads comes from the database and no cache answers.
func openEngine(t *testing.T, engine string) (*SQL, func() *SQL) {
	t.Helper()
	if engine == EngineSQLite {
		s, path := openBatchStore(t)
		return s, func() *SQL { return reopen(t, s, path) }
	}
	dsn := newPostgresSchema(t, postgresDSN(t))
	open := func() *SQL {
		s, err := OpenPostgres(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s := open()
	return s, func() *SQL {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return open()
	}
}

// reopen closes s and opens the store at path again, so that what the
// test reads comes from the file and no cache answers.
func reopen(t *testing.T, s *SQL, path string) *SQL {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// waitQueuedOn waits until n writes are queued behind g.
func waitQueuedOn(t *testing.T, g *groupWriter, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.waiting.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", g.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitQueued waits until n writes are queued behind the writer.
func waitQueued(t *testing.T, s *SQL, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.groups[0].waiting.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", s.groups[0].waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitIsolatesFailedChanges runs, in one shared transaction,
// changes that succeed, changes the domain refuses after their delivery
// mark was written, and redeliveries of a mark taken earlier in the same
// batch. Each caller must see exactly its own outcome, and the store must
// hold exactly the successful changes: a refused change leaves no mark and
// no event behind, and the accepted ones all survive a reopen.
func TestGroupCommitIsolatesFailedChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if _, _, err := s.CreateCall(t.Context(), rosterCall("hot", 3), nil, calls.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	release := holdWriter(t, s, "hot")
	defer release()
	batchesBefore := s.groups[0].batches.Load()
	statsBefore := s.WriterStats()

	const n = 60
	refused := errors.New("refused by the domain")
	type outcome struct {
		kind string // "ok", "refused", "duplicate"
		err  error
	}
	results := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		kind := []string{"ok", "refused", "duplicate"}[i%3]
		results[i].kind = kind
		wg.Go(func() {
			// A duplicate reuses the mark of the "ok" write just before it.
			markOf := i
			if kind == "duplicate" {
				markOf = i - 2
			}
			mark := &calls.DeliveryMark{Source: "test", ID: fmt.Sprintf("m%d", markOf), At: time.Now()}
			_, err := s.UpdateCall(t.Context(), "hot", mark, func(c *calls.Call) ([]calls.Event, error) {
				if kind == "refused" {
					return nil, refused
				}
				return join(fmt.Sprintf("j%03d", i), int64(10+i))(c)
			})
			results[i].err = err
		})
	}
	waitQueued(t, s, n)
	release()
	wg.Wait()

	// A writer counted as queued may not have reached its send yet when
	// the writer drains the queue: it then runs in a batch of its own.
	if got := s.groups[0].batches.Load() - batchesBefore; got > 3 {
		t.Errorf("the %d queued writes ran in %d transactions, want them to share one or two", n, got)
	}
	// WriterStats (the /metrics counters) says the same.
	stats := s.WriterStats()
	if w, tx := stats.Writes-statsBefore.Writes, stats.Transactions-statsBefore.Transactions; w != n || tx != s.groups[0].batches.Load()-batchesBefore || stats.Statements <= statsBefore.Statements {
		t.Errorf("WriterStats counted %d writes in %d transactions and %d statements, want %d writes", w, tx, stats.Statements-statsBefore.Statements, n)
	}
	oks := 0
	for i, r := range results {
		switch r.kind {
		case "ok":
			// A duplicate may win its mark's race against the "ok" write
			// it copies: then the "ok" is the duplicate.
			if r.err != nil && !errors.Is(r.err, calls.ErrDuplicateDelivery) {
				t.Errorf("write %d: %v", i, r.err)
			}
		case "refused":
			if !errors.Is(r.err, refused) {
				t.Errorf("refused write %d: got %v", i, r.err)
			}
		}
		if r.err == nil {
			oks++
		}
	}
	if oks != n/3 {
		t.Errorf("%d writes succeeded, want %d", oks, n/3)
	}

	// Reopen: what is stored is what was acknowledged, and nothing else.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = OpenSQLite(t.Context(), path); err != nil {
		t.Fatal(err)
	}
	c, err := s.GetCall(t.Context(), "hot")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(1 + n/3); c.Version != want {
		t.Errorf("version %d, want %d", c.Version, want)
	}
	if got, want := len(c.Participants), 3+n/3; got != want {
		t.Errorf("%d participants, want %d", got, want)
	}
	evs, err := s.Events(t.Context(), "hot", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n/3 {
		t.Errorf("%d events stored, want %d", len(evs), n/3)
	}
	for i := range n {
		if i%3 != 1 {
			continue
		}
		// The refused write's mark was rolled back with it: its
		// redelivery is new.
		fresh, err := s.MarkOnce(t.Context(), calls.DeliveryMark{Source: "test", ID: fmt.Sprintf("m%d", i), At: time.Now()})
		if err != nil || !fresh {
			t.Errorf("mark of refused write %d: fresh %v, err %v; want it absent", i, fresh, err)
		}
	}
}

// TestGroupCommitSkipsCancelledWrites: a write whose context ends while
// it waits for its turn is not run and writes nothing.
func TestGroupCommitSkipsCancelledWrites(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.CreateCall(t.Context(), rosterCall("c", 1), nil, calls.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	release := holdWriter(t, s, "c")
	defer release()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		_, err := s.UpdateCall(ctx, "c", nil, join("late", 5))
		done <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	err = <-done
	release()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write: %v, want context.Canceled", err)
	}
	c, err := s.GetCall(t.Context(), "c")
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 1 {
		t.Errorf("version %d after a cancelled write, want 1", c.Version)
	}
}

// BenchmarkUpdateCallLargeRoster is one join or leave on a call whose
// roster holds 2,000 people and 4,000 marks: the per-event cost a storm on
// a busy call pays, run from 32 goroutines so that the group writer
// batches.
func BenchmarkUpdateCallLargeRoster(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	c := rosterCall("big", 2000)
	for i := range 2000 {
		c.Seqs[fmt.Sprintf("gone%04d", i)] = calls.RosterMark{Seq: 1}
	}
	if _, _, err := s.CreateCall(ctx, c, nil, calls.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			who := fmt.Sprintf("x%d", i/2)
			_, err := s.UpdateCall(ctx, "big", nil, func(c *calls.Call) ([]calls.Event, error) {
				// Each identity joins, then leaves.
				ev, ok := c.MarkPresence(who, "", i%2 == 0, i, time.Now())
				if !ok {
					return nil, nil
				}
				return []calls.Event{ev}, nil
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestApplyCallTogether queues joins, redeliveries and (in the second
// case) one change the domain refuses on one call behind a held writer.
// Without a refusal they are applied together to one copy of the call;
// with one, the writer falls back to one copy per change. Either way each
// caller gets its own outcome and the store holds exactly the accepted
// changes: one version and one event per accepted join, the roster exact.
func TestApplyCallTogether(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refusal=%v", refuse), func(t *testing.T) {
			s, path := openBatchStore(t)
			if _, _, err := s.CreateCall(t.Context(), rosterCall("hot", 5), nil, calls.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			release := holdWriter(t, s, "hot")
			defer release()
			togetherBefore := s.groups[0].together.Load()

			const n = 40
			refused := errors.New("refused")
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					markOf := i
					if i%4 == 3 {
						markOf = i - 1 // a redelivery of the write before it
					}
					mark := &calls.DeliveryMark{Source: "p", ID: fmt.Sprintf("m%d", markOf), At: time.Now()}
					errs[i] = s.ApplyCall(t.Context(), "hot", mark, func(c *calls.Call) ([]calls.Event, error) {
						if refuse && i == 17 {
							// Changes the copy, then refuses: the
							// fallback must not keep the half change.
							c.Title = "half-changed"
							return nil, refused
						}
						return join(fmt.Sprintf("j%02d", markOf), 100)(c)
					})
				})
			}
			waitQueued(t, s, n)
			release()
			wg.Wait()

			accepted := 0
			for i, err := range errs {
				switch {
				case refuse && i == 17:
					if !errors.Is(err, refused) {
						t.Errorf("refused change: %v", err)
					}
				case errors.Is(err, calls.ErrDuplicateDelivery):
				case err != nil:
					t.Errorf("change %d: %v", i, err)
				default:
					accepted++
				}
			}
			wantAccepted := n - n/4
			if refuse {
				wantAccepted--
			}
			if accepted != wantAccepted {
				t.Errorf("%d changes accepted, want %d", accepted, wantAccepted)
			}
			together := s.groups[0].together.Load() - togetherBefore
			// A change counted as queued may not have reached the writer
			// when it drains the queue, and runs in a later batch: the
			// bounds leave room for a few such stragglers.
			if refuse && together > n/2 {
				t.Errorf("%d changes applied together despite a refusal among them, want the one-by-one fallback", together)
			}
			if !refuse && together < n/2 {
				t.Errorf("%d of %d changes applied together", together, n)
			}

			r := reopen(t, s, path)
			c, err := r.GetCall(t.Context(), "hot")
			if err != nil {
				t.Fatal(err)
			}
			if c.Title == "half-changed" {
				t.Error("the refused change's edit was stored")
			}
			if want := int64(1 + wantAccepted); c.Version != want {
				t.Errorf("version %d, want %d", c.Version, want)
			}
			if got, want := len(c.Participants), 5+wantAccepted; got != want {
				t.Errorf("%d participants, want %d", got, want)
			}
			evs, err := r.Events(t.Context(), "hot", 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != wantAccepted {
				t.Errorf("%d events, want %d", len(evs), wantAccepted)
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].Seq <= evs[i-1].Seq {
					t.Errorf("event seqs out of order: %d after %d", evs[i].Seq, evs[i-1].Seq)
				}
			}
		})
	}
}

// TestPostgresBatchDeadlockIsRetried: two replicas' batches each lock one
// call and then want the other's. PostgreSQL breaks the deadlock by
// failing one statement; that write must be put off to its replica's next
// batch (not failed), and both writes must end up stored.
func TestPostgresBatchDeadlockIsRetried(t *testing.T) {
	dsn := getenvPostgres()
	if dsn == "" {
		t.Skip("set " + postgresEnv + " to run against PostgreSQL")
	}
	schemaDSN := newPostgresSchema(t, dsn)
	a, err := OpenPostgres(t.Context(), schemaDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenPostgres(t.Context(), schemaDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, id := range []string{"x", "y"} {
		if _, _, err := a.CreateCall(t.Context(), rosterCall(id, 1), nil, calls.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var locked sync.WaitGroup
	locked.Add(2)
	// batch locks first, waits until the other batch has locked its own,
	// then changes second.
	batch := func(s *SQL, first, second string) []*writeOp {
		lock := &writeOp{ctx: t.Context(), done: make(chan struct{}), run: func(ctx context.Context, tx *txn) error {
			if _, err := s.loadForUpdate(ctx, tx, first); err != nil {
				return err
			}
			locked.Done()
			locked.Wait()
			return nil
		}}
		change := &writeOp{ctx: t.Context(), done: make(chan struct{}), run: func(ctx context.Context, tx *txn) error {
			return s.updateOne(ctx, tx, second, nil, join("from-"+first, 7), &update{})
		}}
		return []*writeOp{lock, change}
	}
	var wg sync.WaitGroup
	retries := make([][]*writeOp, 2)
	wg.Go(func() { retries[0] = a.groups[0].run(batch(a, "x", "y")) })
	wg.Go(func() { retries[1] = b.groups[0].run(batch(b, "y", "x")) })
	wg.Wait()

	put := 0
	for i, r := range retries {
		s := []*SQL{a, b}[i]
		for len(r) > 0 {
			put++
			r = s.groups[0].run(r)
		}
	}
	if put != 1 {
		t.Errorf("%d writes put off to a later batch, want the deadlock's one loser", put)
	}
	for _, id := range []string{"x", "y"} {
		c, err := a.GetCall(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Participants) != 2 {
			t.Errorf("call %s has %d participants, want both changes stored", id, len(c.Participants))
		}
	}
}

// TestChildCacheBounds: the roster cache keeps within its entry count and
// its weight (members, participants and marks), and its weight
// bookkeeping matches what it holds.
func TestChildCacheBounds(t *testing.T) {
	var cc childCache
	for i := range 3 * childCacheSize {
		c := rosterCall(fmt.Sprintf("c%d", i), 1+i%3)
		if i%15000 == 0 {
			c = rosterCall(fmt.Sprintf("big%d", i), 150_000) // a heavy call now and then
		}
		cc.put(&c)
		if len(cc.m) > childCacheSize {
			t.Fatalf("%d entries, bound %d", len(cc.m), childCacheSize)
		}
	}
	sum := 0
	for _, e := range cc.m {
		sum += e.weight()
	}
	if sum != cc.weight || cc.weight > childCacheWeight {
		t.Fatalf("weight %d (bookkept %d), bound %d", sum, cc.weight, childCacheWeight)
	}
	c := rosterCall("again", 2)
	cc.put(&c)
	cc.put(&c)
	cc.drop("again")
	if _, ok := cc.get("again", c.Version); ok {
		t.Fatal("dropped entry still cached")
	}
}

// TestApplyCallsOfManyCallsTogether: provider events for eight calls queue
// in one batch, with redeliveries among them, and (second run) one change
// that edits its copy of the call and then refuses. Without a refusal all
// of them are applied under one savepoint, their events appended
// together; with one, everything that batch wrote is rolled back and each
// call's changes run on their own, so only the refused change is missing.
// Each caller sees its own outcome, and a fresh store reads back exactly
// the accepted changes, with every call's events in order.
func TestApplyCallsOfManyCallsTogether(t *testing.T) {
	const callsN, perCall = 8, 5
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		for _, refuse := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/refusal=%v", engine, refuse), func(t *testing.T) {
				testApplyCallsOfManyCalls(t, engine, refuse, callsN, perCall)
			})
		}
	}
}

func testApplyCallsOfManyCalls(t *testing.T, engine string, refuse bool, callsN, perCall int) {
	s, reopenStore := openEngine(t, engine)
	g, ids := callsBehindGate(t, s, callsN, 2)
	release := holdWriter(t, s, "gate")
	defer release()
	togetherBefore := g.together.Load()
	{
		{

			refused := errors.New("refused")
			type outcome struct {
				call string
				veto bool
				err  error
			}
			out := make([]outcome, callsN*perCall)
			var wg sync.WaitGroup
			for i := range out {
				c, k := i%callsN, i/callsN
				id := ids[c]
				markOf := k
				if k == perCall-1 { // redelivers the change before it
					markOf = k - 1
				}
				veto := refuse && c == 3 && k == 1
				out[i] = outcome{call: id, veto: veto}
				wg.Go(func() {
					mark := &calls.DeliveryMark{Source: "p", ID: fmt.Sprintf("%s-m%d", id, markOf), At: time.Now()}
					out[i].err = s.ApplyCall(t.Context(), id, mark, func(cl *calls.Call) ([]calls.Event, error) {
						if veto {
							cl.Title = "half-changed"
							return nil, refused
						}
						return join(fmt.Sprintf("j%d", markOf), 100)(cl)
					})
				})
			}
			waitQueuedOn(t, g, int64(callsN*perCall))
			release()
			wg.Wait()

			// The last two changes of each call share a mark: whichever
			// the writer reached first is applied, the other is a
			// duplicate.
			accepted, dups := map[string]int{}, map[string]int{}
			total := 0
			for i, o := range out {
				switch {
				case o.veto:
					if !errors.Is(o.err, refused) {
						t.Errorf("change %d (%s): %v, want the refusal", i, o.call, o.err)
					}
				case errors.Is(o.err, calls.ErrDuplicateDelivery):
					dups[o.call]++
				case o.err != nil:
					t.Errorf("change %d (%s): %v", i, o.call, o.err)
				default:
					accepted[o.call]++
					total++
				}
			}
			for _, id := range ids {
				if dups[id] != 1 {
					t.Errorf("%s: %d duplicates, want the one redelivery", id, dups[id])
				}
			}
			together := g.together.Load() - togetherBefore
			// Stragglers that missed the batch leave room below the total.
			if !refuse && together < int64(callsN*perCall/2) {
				t.Errorf("%d of %d changes applied together", together, callsN*perCall)
			}
			if refuse && together > int64((callsN-1)*perCall) {
				t.Errorf("%d changes applied together, more than the calls without a refusal hold", together)
			}

			r := reopenStore()
			for _, id := range ids {
				got, err := r.GetCall(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				if got.Title == "half-changed" {
					t.Errorf("%s: the refused change's edit was stored", id)
				}
				if want := 2 + accepted[id]; len(got.Participants) != want {
					t.Errorf("%s: %d participants, want %d", id, len(got.Participants), want)
				}
				if want := int64(1 + accepted[id]); got.Version != want {
					t.Errorf("%s: version %d, want %d", id, got.Version, want)
				}
				for _, sf := range got.Surfaces {
					if sf.Delivery.Wanted != got.Version {
						t.Errorf("%s: surface %s wants version %d, the call is at %d", id, sf.Key(), sf.Delivery.Wanted, got.Version)
					}
				}
				evs, err := r.Events(t.Context(), id, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) != accepted[id] {
					t.Errorf("%s: %d events, want %d", id, len(evs), accepted[id])
				}
				for i, e := range evs {
					if e.CallID != id || (i > 0 && e.Seq <= evs[i-1].Seq) {
						t.Errorf("%s: event %d is %+v", id, i, e)
					}
				}
			}
			if want := callsN * (perCall - 1); !refuse && total != want {
				t.Errorf("%d changes accepted, want %d", total, want)
			}
		}
	}
}

// callsBehindGate creates a call "gate" (for holdWriter) and n calls of
// roster people each that share its group writer (PostgreSQL routes
// writes to one of several writers by call id), and returns that writer
// and the n calls' ids.
func callsBehindGate(t *testing.T, s *SQL, n, roster int) (*groupWriter, []string) {
	t.Helper()
	g := s.writer("gate")
	var ids []string
	for i := 0; len(ids) < n; i++ {
		if id := fmt.Sprintf("c%d", i); s.writer(id) == g {
			ids = append(ids, id)
		}
	}
	if _, _, err := s.CreateCall(t.Context(), rosterCall("gate", 0), nil, calls.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, _, err := s.CreateCall(t.Context(), rosterCall(id, roster), nil, calls.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return g, ids
}

// A redelivery that arrives in a later batch, among new deliveries for the
// same call and another one, is refused alone: the batch records its
// marks in one statement and the one recorded before is not among them.
func TestApplyCallRedeliveryInALaterBatch(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"c0", "c1", "gate"} {
		if _, _, err := s.CreateCall(t.Context(), rosterCall(id, 0), nil, calls.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mark := func(id string) *calls.DeliveryMark { return &calls.DeliveryMark{Source: "p", ID: id, At: time.Now()} }
	if err := s.ApplyCall(t.Context(), "c0", mark("m1"), join("ada", 1)); err != nil {
		t.Fatal(err)
	}
	release := holdWriter(t, s, "gate")
	defer release()
	type write struct {
		call, mark, who string
	}
	writes := []write{{"c0", "m1", "bob"}, {"c1", "m2", "cy"}, {"c0", "m3", "dee"}}
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Go(func() { errs[i] = s.ApplyCall(t.Context(), w.call, mark(w.mark), join(w.who, 2)) })
	}
	waitQueued(t, s, int64(len(writes)))
	release()
	wg.Wait()
	if !errors.Is(errs[0], calls.ErrDuplicateDelivery) {
		t.Errorf("the redelivery of m1: %v, want a duplicate", errs[0])
	}
	if errs[1] != nil || errs[2] != nil {
		t.Errorf("new deliveries: %v, %v", errs[1], errs[2])
	}
	for id, want := range map[string][]string{"c0": {"ada", "dee"}, "c1": {"cy"}} {
		c, err := s.GetCall(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range c.Participants {
			got = append(got, p.Identity)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: participants %v, want %v", id, got, want)
		}
	}
}

// BenchmarkApplyCallConcurrent is the store's share of provider webhook
// intake: 32 goroutines apply marked participant events, to one call (a
// busy call: the writer applies a batch's changes to one copy) or spread
// over 200 calls (one savepoint and one event append for the batch).
// ns/op is the writer's cost per event, commits included.
func BenchmarkApplyCallConcurrent(b *testing.B) {
	for _, n := range []int{1, 200} {
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			s := benchStore(b)
			for c := range n {
				if _, _, err := s.CreateCall(b.Context(), rosterCall(fmt.Sprintf("c%03d", c), 0), nil, calls.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(16) // 32 goroutines on 2 CPUs, as the harness's clients
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					id := fmt.Sprintf("c%03d", i%int64(n))
					mark := &calls.DeliveryMark{Source: "p", ID: fmt.Sprintf("m%d", i), At: time.Now()}
					who := fmt.Sprintf("p%d", (i/int64(n))%64)
					joined := (i/int64(n)/64)%2 == 0
					err := s.ApplyCall(b.Context(), id, mark, func(c *calls.Call) ([]calls.Event, error) {
						ev, _ := c.MarkPresence(who, "", joined, i, time.Now())
						return []calls.Event{ev}, nil
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// The writer's group-commit wait. A client that writes one at a time
// never waits. After a batch of several writes, a smaller batch waits for
// company until it is as large, and a write sent meanwhile shares its
// commit. Once the writer has been idle, a lone write runs at once. (The
// wait and the busy window are made long, so nothing here depends on
// timing but the idle gap at the end.)
func TestGroupCommitWaitsForCompanyOnlyWhenBusy(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := s.groups[0]
	g.groupWait, g.busyWithin = time.Minute, time.Minute
	apply := func(id, who string) error { return s.ApplyCall(t.Context(), id, nil, join(who, 1)) }

	// One at a time: batches of one, no waits.
	waited := g.waited.Load()
	for _, id := range []string{"a", "b", "c", "d", "gate"} {
		if _, _, err := s.CreateCall(t.Context(), rosterCall(id, 0), nil, calls.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := apply("a", "ada"); err != nil {
		t.Fatal(err)
	}
	if g.waited.Load() != waited {
		t.Fatal("a client writing one at a time waited for company")
	}

	// A batch of two writes, held behind the writer, then released.
	release := holdWriter(t, s, "gate")
	done := make(chan error, 4)
	go func() { done <- apply("a", "amy") }()
	go func() { done <- apply("b", "bob") }()
	waitQueued(t, s, 2)
	release()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Right after it, a lone write waits for a second one, which joins it.
	batches := g.batches.Load()
	go func() { done <- apply("c", "cy") }()
	deadline := time.Now().Add(10 * time.Second)
	for g.waited.Load() == waited {
		if time.Now().After(deadline) {
			t.Fatal("a small batch right after a batch of two did not wait for company")
		}
		time.Sleep(time.Millisecond)
	}
	go func() { done <- apply("d", "dee") }()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := g.batches.Load() - batches; n != 1 {
		t.Fatalf("%d batches for the two writes, want 1", n)
	}

	// Idle past the busy window: a lone write does not wait (with a
	// one-minute wait it would not return in time for the test).
	g.busyWithin = time.Millisecond
	time.Sleep(10 * time.Millisecond)
	waited = g.waited.Load()
	if err := apply("a", "axel"); err != nil {
		t.Fatal(err)
	}
	if g.waited.Load() != waited {
		t.Fatal("a lone write on an idle writer waited for company")
	}
}

// TestPostgresBatchLocksCallsInOneStatement checks that a batch of
// provider events over many calls costs PostgreSQL a number of statements
// (round trips) that does not grow with the calls: their rows are locked
// in one statement and their surfaces (the cache holding the rest) or
// their children (a cold cache, three statements) read in one query per
// table, where each call took two or more of its own. The changes must
// all be applied, as in TestApplyCallsOfManyCallsTogether.
func TestPostgresBatchLocksCallsInOneStatement(t *testing.T) {
	const callsN = 16
	for _, tc := range []struct {
		name string
		cold bool
		// One for the marks, one for the locks, the children's reads,
		// four for the rows (calls, roster, events, surface bumps), and
		// no savepoint: the batch holds nothing but provider events.
		want int64
	}{
		{"children cached", false, 1 + 1 + 1 + 4},
		{"cache cold", true, 1 + 1 + 3 + 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, reopenStore := openEngine(t, EnginePostgres)
			g, ids := callsBehindGate(t, s, callsN, 2)
			if tc.cold {
				s = reopenStore()
				g = s.writer("gate")
			}
			release := holdWriter(t, s, "gate")
			defer release()
			var wg sync.WaitGroup
			errs := make([]error, callsN)
			for i, id := range ids {
				wg.Go(func() {
					mark := &calls.DeliveryMark{Source: "p", ID: id + "-m", At: time.Now()}
					errs[i] = s.ApplyCall(t.Context(), id, mark, join("newcomer", 100))
				})
			}
			waitQueuedOn(t, g, callsN)
			// Counted from here: the rest of the held write (which
			// changes nothing), then the batch of the queued changes.
			batches, statements := g.batches.Load(), g.statements.Load()
			release()
			wg.Wait()
			if n := g.batches.Load() - batches; n != 1 {
				t.Fatalf("the queued changes ran in %d batches, want 1", n)
			}
			n := g.statements.Load() - statements
			t.Logf("%d statements for a batch over %d calls", n, callsN)
			if n > tc.want {
				t.Errorf("a batch over %d calls ran %d statements, want %d: one round trip per kind of row, not per call, and no savepoint", callsN, n, tc.want)
			}
			for i, err := range errs {
				if err != nil {
					t.Errorf("change of %s: %v", ids[i], err)
				}
			}
			r := reopenStore()
			for _, id := range ids {
				got, err := r.GetCall(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Participants) != 3 || got.Version != 2 {
					t.Errorf("%s: %d participants at version %d, want 3 at version 2", id, len(got.Participants), got.Version)
				}
			}
		})
	}
}

// A batch of new calls is stored together: their children and events go
// out in a statement per kind of row, not per call, and each call reads
// back whole (members, surfaces, room job, events numbered in the caller's
// slice). A batch where one create cannot run with the others (a replayed
// mark; a key another create of the batch takes) runs each on its own, and
// each gets its own outcome.
func TestCreatesInABatchAreStoredTogether(t *testing.T) {
	const n = 12
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			if engine == EnginePostgres && getenvPostgres() == "" {
				t.Skip("CALLGATE_TEST_POSTGRES is not set")
			}
			s, reopenStore := openEngine(t, engine)
			g, _ := callsBehindGate(t, s, 0, 0)
			// Ids the held writer takes (PostgreSQL routes by id).
			var ids []string
			for i := 0; len(ids) < 3*n; i++ {
				if id := fmt.Sprintf("new%d", i); s.writer(id) == g {
					ids = append(ids, id)
				}
			}
			if _, err := s.MarkOnce(t.Context(), calls.DeliveryMark{Source: "replay:acme", ID: "seen", At: time.Now()}); err != nil {
				t.Fatal(err)
			}
			type outcome struct {
				stored  calls.Call
				created bool
				err     error
				events  []calls.Event
			}
			batch := func(ids []string, opts func(i int) calls.CreateOptions) ([]outcome, int64, int64) {
				release := holdWriter(t, s, "gate")
				defer release()
				out := make([]outcome, len(ids))
				var wg sync.WaitGroup
				for i, id := range ids {
					wg.Go(func() {
						c := benchCall(id)
						c.Room = calls.Room{} // a room job is due
						out[i].events = []calls.Event{{Kind: calls.EventCreated, State: c.State, At: c.CreatedAt}, {Kind: calls.EventUpdated, State: c.State, At: c.CreatedAt}}
						out[i].stored, out[i].created, out[i].err = s.CreateCall(t.Context(), c, out[i].events, opts(i))
					})
				}
				waitQueuedOn(t, g, int64(len(ids)))
				batches, statements := g.batches.Load(), g.statements.Load()
				release()
				wg.Wait()
				return out, g.batches.Load() - batches, g.statements.Load() - statements
			}

			// Together: marks and keys of their own.
			out, batches, statements := batch(ids[:n], func(i int) calls.CreateOptions {
				return calls.CreateOptions{Key: fmt.Sprintf("k%d", i), Mark: &calls.DeliveryMark{Source: "replay:acme", ID: fmt.Sprintf("m%d", i), At: time.Now()}}
			})
			if batches != 1 {
				t.Fatalf("the queued creates ran in %d batches, want 1", batches)
			}
			// Each create: its mark and its call row (two statements);
			// the batch: a savepoint and its release, one statement each
			// for members, surfaces, room jobs and events, and room for
			// the batch's own (SQLite's data_version) and the held
			// write's tail: 31-33 here. Each on its own would be eight
			// or more, about a hundred in all.
			t.Logf("%d statements for %d creates", statements, n)
			if limit := int64(2*n + 10); statements > limit {
				t.Errorf("%d creates in a batch ran %d statements, want at most %d", n, statements, limit)
			}
			seqs := map[int64]bool{}
			for i, o := range out {
				if o.err != nil || !o.created || o.stored.ID != ids[i] {
					t.Fatalf("create %s: %s created=%v, %v", ids[i], o.stored.ID, o.created, o.err)
				}
				for _, ev := range o.events {
					if ev.Seq == 0 || seqs[ev.Seq] {
						t.Errorf("create %s: event seq %d (zero or taken)", ids[i], ev.Seq)
					}
					seqs[ev.Seq] = true
				}
				if o.events[1].Seq <= o.events[0].Seq {
					t.Errorf("create %s: events numbered %d, %d: out of order", ids[i], o.events[0].Seq, o.events[1].Seq)
				}
			}

			// One replayed mark, and two creates after one key: each on
			// its own.
			out, _, _ = batch(ids[n:2*n], func(i int) calls.CreateOptions {
				switch i {
				case 0:
					return calls.CreateOptions{Mark: &calls.DeliveryMark{Source: "replay:acme", ID: "seen", At: time.Now()}}
				case 1, 2:
					return calls.CreateOptions{Key: "shared"}
				}
				return calls.CreateOptions{}
			})
			if !errors.Is(out[0].err, calls.ErrDuplicateDelivery) {
				t.Errorf("a create with a replayed mark: %v, want ErrDuplicateDelivery", out[0].err)
			}
			if out[1].created == out[2].created || out[1].stored.ID != out[2].stored.ID || len(out[1].stored.Members) != 2 || len(out[2].stored.Members) != 2 {
				t.Errorf("two creates with one key: %s created=%v %d members, %s created=%v %d members; want one call, whole, created once",
					out[1].stored.ID, out[1].created, len(out[1].stored.Members), out[2].stored.ID, out[2].created, len(out[2].stored.Members))
			}
			for i, o := range out[3:] {
				if o.err != nil || !o.created {
					t.Errorf("create %s beside them: created=%v, %v", ids[n+3+i], o.created, o.err)
				}
			}

			// What was stored, read back from the file (no cache).
			r := reopenStore()
			if _, err := r.GetCall(t.Context(), ids[n]); !errors.Is(err, calls.ErrNotFound) {
				t.Errorf("the replayed create stored its call: %v", err)
			}
			jobs, err := r.CountRoomJobs(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			// The first batch's n, and the second's but the replay and
			// one of the two after one key.
			if want := int64(n + n - 2); jobs != want {
				t.Errorf("%d room jobs, want %d", jobs, want)
			}
			for _, id := range ids[:n] {
				got, err := r.GetCall(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Members) != 2 || got.Members[1].UserID != "u2" || len(got.Surfaces) != 1 || got.Surfaces[0].Delivery.Wanted != 1 || got.Version != 1 {
					t.Errorf("%s read back: members %+v, surfaces %+v, version %d", id, got.Members, got.Surfaces, got.Version)
				}
				evs, err := r.Events(t.Context(), id, 0)
				if err != nil || len(evs) != 2 {
					t.Errorf("%s: %d events, %v", id, len(evs), err)
				}
			}
		})
	}
}
