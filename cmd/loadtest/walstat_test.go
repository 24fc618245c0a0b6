package main

import (
	"encoding/binary"
	"slices"
	"testing"
)

// TestWALFrames builds a log by the file format's layout and checks that
// frames are attributed to commits, that an unfinished transaction's
// frames are left out, and that frames from before a restart (other salts)
// end the log.
func TestWALFrames(t *testing.T) {
	const pageSize = 512
	header := make([]byte, 32)
	binary.BigEndian.PutUint32(header[0:], 0x377f0682)
	binary.BigEndian.PutUint32(header[8:], pageSize)
	copy(header[16:24], "saltsalt")
	frame := func(page, commitSize uint32, salt string) []byte {
		f := make([]byte, 24+pageSize)
		binary.BigEndian.PutUint32(f[0:], page)
		binary.BigEndian.PutUint32(f[4:], commitSize)
		copy(f[8:16], salt)
		return f
	}
	wal := slices.Concat(header,
		frame(3, 0, "saltsalt"), frame(7, 10, "saltsalt"), // commit 1: pages 3, 7
		frame(3, 12, "saltsalt"), // commit 2: page 3
		frame(9, 0, "saltsalt"),  // a transaction still being written
	)
	pages, commits, err := walFrames(wal)
	if err != nil || commits != 2 || !slices.Equal(pages, []uint32{3, 7, 3}) {
		t.Fatalf("walFrames = %v, %d commits, %v; want [3 7 3], 2 commits", pages, commits, err)
	}
	stale := slices.Concat(header, frame(3, 5, "saltsalt"), frame(4, 6, "oldsalts"), frame(5, 7, "saltsalt"))
	if pages, commits, _ := walFrames(stale); commits != 1 || !slices.Equal(pages, []uint32{3}) {
		t.Errorf("a frame from before the restart did not end the log: %v, %d commits", pages, commits)
	}
	if _, _, err := walFrames(make([]byte, 64)); err == nil {
		t.Errorf("a file without the WAL magic number was read as a log")
	}
}

// writerNote reads the group writer's counters over a scenario: per
// commit and per write, nothing for a scenario without writes, and no
// figures when the gateway restarted (its counters started over).
func TestWriterNote(t *testing.T) {
	for _, tc := range []struct {
		d    writerCounts
		want string
	}{
		{writerCounts{transactions: 4, writes: 30, statements: 45, together: 20}, "store writer: 30 writes in 4 transactions (7.5 per commit), 1.50 statements per write, 20 applied together with others to one call"},
		{writerCounts{}, "store writer: no write"},
		{writerCounts{transactions: -5, writes: -40, statements: -60}, "store writer: the gateway restarted during the scenario (its counters started over)"},
	} {
		if got := writerNote(tc.d); got != tc.want {
			t.Errorf("writerNote(%+v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
