package store

import "sync"

// roomCache remembers which call a provider room belongs to, so a status
// webhook does not ask the database for it each time: that read was one
// seventh of the gateway's CPU under a webhook load, because SQLite throws
// a reader's page cache away after every commit.
//
// A room's call changes only when a call with that room name is stored (a
// new call in a per-channel room, or the room worker naming a call's
// room), and calls are never deleted. Every write that can move a room's
// newest call notes it (txn.roomStored): a new call with a room, or an
// update of a call's provider, room or creation time. After the
// transaction, a room whose cached call is not the one stored is dropped. A lookup that raced such a
// write does not store what it read: the generation it started with has
// moved on.
//
// Only a store that is the sole writer of its database can keep one
// (SQLite); PostgreSQL's replicas store calls the others cannot see.
type roomCache struct {
	mu  sync.Mutex
	gen uint64
	ids map[roomKey]string
}

type roomKey struct{ provider, room string }

// maxRoomCache bounds the cache; a full cache starts again empty (the
// rooms in use come back at one read each).
const maxRoomCache = 65536

func newRoomCache() *roomCache { return &roomCache{ids: map[roomKey]string{}} }

// get returns the cached call of the room, or the generation a lookup
// must present to put what it reads.
func (c *roomCache) get(k roomKey) (id string, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok = c.ids[k]
	return id, c.gen, ok
}

// put stores a lookup's answer unless a call was stored with a room since
// the lookup began.
func (c *roomCache) put(k roomKey, id string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.ids) >= maxRoomCache {
		clear(c.ids)
	}
	c.ids[k] = id
}

// stored runs after every transaction, whether it committed or its
// outcome is unknown, with the rooms it stored calls with: rooms whose
// cached call may no longer be the newest are dropped. A store without a
// cache (nil) has nothing to drop.
func (c *roomCache) stored(rooms map[roomKey]string) {
	if c == nil || len(rooms) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, id := range rooms {
		if have, ok := c.ids[k]; ok && have == id {
			continue // the call it already names: nothing moved
		}
		delete(c.ids, k)
		c.gen++
	}
}
