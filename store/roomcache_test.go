package store

import "testing"

// TestRoomCacheRefusesARacedLookup: a lookup that began before a write
// stored a call with the room does not put what it read, which may be the
// room's call before that write.
func TestRoomCacheRefusesARacedLookup(t *testing.T) {
	k := roomKey{"jitsi", "standup"}
	for _, tc := range []struct {
		name  string
		write map[roomKey]string // stored between the lookup's start and its put
		kept  bool
	}{
		{"no write", nil, true},
		{"a write of another room", map[roomKey]string{{"jitsi", "other"}: "c9"}, false},
		{"a new call takes the room", map[roomKey]string{k: "c2"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRoomCache()
			_, gen, ok := c.get(k)
			if ok {
				t.Fatal("an empty cache answered")
			}
			if tc.write != nil {
				c.stored(tc.write)
			}
			c.put(k, "c1", gen)
			if _, _, ok := c.get(k); ok != tc.kept {
				t.Fatalf("cached after the lookup: %v, want %v", ok, tc.kept)
			}
		})
	}
	// A write of the call the cache already names moves nothing: the
	// busy call's own updates keep its entry and let lookups put theirs.
	c := newRoomCache()
	_, gen, _ := c.get(k)
	c.put(k, "c1", gen)
	_, gen2, _ := c.get(k)
	c.stored(map[roomKey]string{k: "c1"})
	if id, gen3, ok := c.get(k); !ok || id != "c1" || gen3 != gen2 {
		t.Fatalf("a write of the cached call dropped it: %q %v, generation %d -> %d", id, ok, gen2, gen3)
	}
}
