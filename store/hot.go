package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/callgate/callgate/calls"
)

// childCache keeps, per call, the members and roster this process last
// stored or read, with the call version they belong to. Members and roster
// change only with the call's version (CreateCall and UpdateCall write
// them, nothing else does), so when the locked calls row has the cached
// version the cached children are exactly what is stored: UpdateCall then
// skips rereading a large roster for every event. Another replica's write
// bumps the version, so the entry simply misses. Surfaces, whose delivery
// state the outbox changes without a new version, are always read.
//
// Entries are immutable once stored; readers clone before changing.
type childCache struct {
	mu sync.Mutex
	m  map[string]*cachedChildren
	// weight is the members, participants and marks the entries hold.
	weight int
}

type cachedChildren struct {
	version      int64
	members      []calls.Member
	participants []calls.Participant
	seqs         map[string]calls.RosterMark
	// call is the whole call as this process's writer last committed it,
	// surfaces included, or nil once its surfaces were written without
	// it (a claim, a delivery's record) or the writer's transaction
	// failed. Only the SQLite writer uses it, and only while no other
	// connection has committed since (see SQL.beginBatch): then it is
	// exactly what a read would return, and a write needs no read.
	call *calls.Call
	// surfacesStale says call's surfaces were written since (a claim, a
	// delivery's record): the rest of it holds, the surfaces are read.
	surfacesStale bool
}

// childCacheSize bounds the entries, and childCacheWeight the members,
// participants and marks they hold together (a busy call's roster is
// thousands); a full cache drops arbitrary entries. The count is large
// enough that a call created a few seconds ago is still there when its
// room worker and its first card read it under a load of thousands of
// calls a second.
const (
	childCacheSize   = 16384
	childCacheWeight = 1 << 20
)

func (e *cachedChildren) weight() int { return 1 + len(e.members) + len(e.participants) + len(e.seqs) }

func (cc *childCache) get(id string, version int64) (*cachedChildren, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e, ok := cc.m[id]
	if !ok || e.version != version {
		return nil, false
	}
	return e, true
}

// put stores a copy of c (whole, and its members and roster) at c's
// version.
func (cc *childCache) put(c *calls.Call) { cc.putCall(c, false) }

// putCall is put, noting whether c's surfaces were written since c was
// read or changed (surfacesStale: only the rest of it is exact).
func (cc *childCache) putCall(c *calls.Call, surfacesStale bool) {
	full := c.Clone()
	cc.keep(&full, surfacesStale)
}

// adopt is put of a call nothing else holds (a batch's own copy, see
// txn.owned): the cache keeps c itself, without a copy. Copying a busy
// call's roster and marks once more per batch was an eighth of what the
// one-call webhook path allocated.
func (cc *childCache) adopt(c *calls.Call) { cc.keep(c, false) }

// keep stores full, which the cache owns from now on.
func (cc *childCache) keep(full *calls.Call, surfacesStale bool) {
	e := &cachedChildren{
		version:       full.Version,
		members:       full.Members,
		participants:  full.Participants,
		seqs:          full.Seqs,
		call:          full,
		surfacesStale: surfacesStale,
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.m == nil {
		cc.m = map[string]*cachedChildren{}
	}
	cc.remove(full.ID)
	if len(cc.m) >= childCacheSize || cc.weight+e.weight() > childCacheWeight {
		// Drop an eighth, by count and by weight, in map order (random).
		n, shed := 0, 0
		for k, old := range cc.m {
			shed += old.weight()
			cc.remove(k)
			if n++; n >= childCacheSize/8 && shed >= childCacheWeight/8 {
				break
			}
		}
	}
	cc.m[full.ID] = e
	cc.weight += e.weight()
}

// getCall returns the whole call id as the writer last committed it, and
// whether its surfaces must be read again.
func (cc *childCache) getCall(id string) (c *calls.Call, surfacesStale, ok bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e, ok := cc.m[id]
	if !ok || e.call == nil {
		return nil, false, false
	}
	return e.call, e.surfacesStale, true
}

// dropCall forgets id's whole call but keeps its members and roster,
// which only a new version changes.
func (cc *childCache) dropCall(id string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if e, ok := cc.m[id]; ok && e.call != nil {
		cc.m[id] = e.withoutCall()
	}
}

// dropCalls forgets every whole call: another connection has written.
func (cc *childCache) dropCalls() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for id, e := range cc.m {
		if e.call != nil {
			cc.m[id] = e.withoutCall()
		}
	}
}

// withoutCall returns a copy of e without its whole call: entries are
// shared with readers and never changed once stored.
func (e *cachedChildren) withoutCall() *cachedChildren {
	cp := *e
	cp.call, cp.surfacesStale = nil, false
	return &cp
}

func (cc *childCache) drop(id string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.remove(id)
}

// remove deletes id's entry; cc.mu is held.
func (cc *childCache) remove(id string) {
	if old, ok := cc.m[id]; ok {
		cc.weight -= old.weight()
		delete(cc.m, id)
	}
}

// loadForUpdate reads the call locked for the transaction: as an earlier
// write of the same batch left it, or with members and roster from the
// cache when it holds the stored version. The call returned may share
// the batch's or the cache's slices: it must not be changed (UpdateCall
// changes a Clone).
func (s *SQL) loadForUpdate(ctx context.Context, tx *txn, id string) (calls.Call, error) {
	if c, ok := tx.current[id]; ok {
		return *c, nil
	}
	// A call held before this transaction wrote its surfaces (a claim, a
	// delivery's record): only the surfaces are read again.
	if c := tx.surfaced[id]; c != nil {
		return s.withSurfaces(ctx, tx, *c)
	}
	if tx.exclusive {
		if c, stale, ok := s.children.getCall(id); ok {
			if stale {
				return s.withSurfaces(ctx, tx, *c)
			}
			return *c, nil
		}
	}
	c, _, err := s.loadCached(ctx, tx, id, s.d.forUpdate)
	return c, err
}

// withSurfaces returns c with its surfaces as stored. c may share slices
// with a cache: only its Surfaces are replaced, by a new slice.
func (s *SQL) withSurfaces(ctx context.Context, q querier, c calls.Call) (calls.Call, error) {
	sfs, err := s.readSurfaces(ctx, q, c.ID)
	if err != nil {
		return calls.Call{}, err
	}
	c.Surfaces = sfs
	return c, nil
}

// readSurfaces reads a call's surfaces in order.
func (s *SQL) readSurfaces(ctx context.Context, q querier, id string) ([]calls.Surface, error) {
	var sfs []calls.Surface
	err := s.eachRow(ctx, q, `SELECT `+surfaceCols+` FROM call_surfaces WHERE call_id = ? ORDER BY pos`, []any{id}, func(r *sql.Rows) error {
		_, sf, err := scanSurface(r)
		if err != nil {
			return err
		}
		sfs = append(sfs, sf)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read call surfaces: %w", err)
	}
	return sfs, nil
}

// loadCached reads the calls row with q (suffix after its WHERE, a row
// lock or nothing) and takes members and roster from the cache when it
// holds the row's version, reading only the surfaces (whose delivery state
// changes without a new version); otherwise it reads the children. shared
// reports whether the call holds the cache's slices, which must not be
// changed.
func (s *SQL) loadCached(ctx context.Context, q querier, id, suffix string) (c calls.Call, shared bool, err error) {
	c, err = scanCall(q.QueryRowContext(ctx, s.d.q(selectCalls+` WHERE id = ?`+suffix), id))
	if errors.Is(err, sql.ErrNoRows) {
		return calls.Call{}, false, fmt.Errorf("store: call %s: %w", id, calls.ErrNotFound)
	}
	if err != nil {
		return calls.Call{}, false, fmt.Errorf("store: read call %s: %w", id, err)
	}
	e, ok := s.children.get(id, c.Version)
	if !ok {
		if err := s.loadChildren(ctx, q, []*calls.Call{&c}); err != nil {
			return calls.Call{}, false, err
		}
		return c, false, nil
	}
	c.Members, c.Participants, c.Seqs = e.members, e.participants, e.seqs
	if c.Surfaces, err = s.readSurfaces(ctx, q, id); err != nil {
		return calls.Call{}, false, err
	}
	return c, true, nil
}

// rosterChanges returns the call_roster rows that differ between cur and
// next: identities whose row goes, and rows to upsert. It walks both
// rosters once without building them as maps; an identity it is unsure
// about (rosters read back in another order) is rewritten, which is
// harmless.
func rosterChanges(cur, next *calls.Call) (gone []string, upserts map[string]rosterRow) {
	touched := map[string]bool{}
	a, b := cur.Participants, next.Participants
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b):
			touched[a[i].Identity] = true
			i++
		case i >= len(a):
			touched[b[j].Identity] = true
			j++
		default:
			switch n := compareParticipant(a[i], b[j]); {
			case n < 0:
				touched[a[i].Identity] = true
				i++
			case n > 0:
				touched[b[j].Identity] = true
				j++
			default:
				if a[i].Name != b[j].Name {
					touched[a[i].Identity] = true
				}
				i++
				j++
			}
		}
	}
	for id, m := range next.Seqs {
		if old, ok := cur.Seqs[id]; !ok || old != m {
			touched[id] = true
		}
	}
	for id := range cur.Seqs {
		if _, ok := next.Seqs[id]; !ok {
			touched[id] = true
		}
	}
	if len(touched) == 0 {
		return nil, nil
	}
	upserts = map[string]rosterRow{}
	for _, p := range next.Participants {
		if touched[p.Identity] {
			upserts[p.Identity] = rosterRow{present: true, name: p.Name, joinedAt: p.JoinedAt}
		}
	}
	for id := range touched {
		r := upserts[id]
		if m, ok := next.Seqs[id]; ok && m.Seq != 0 {
			r.seq, r.seqPresent = m.Seq, m.Present
		}
		if !r.present && r.seq == 0 {
			delete(upserts, id)
			gone = append(gone, id)
			continue
		}
		upserts[id] = r
	}
	return gone, upserts
}

func compareParticipant(a, b calls.Participant) int {
	if n := a.JoinedAt.Compare(b.JoinedAt); n != 0 {
		return n
	}
	return strings.Compare(a.Identity, b.Identity)
}
