package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// walPages reads what the SQLite store's write-ahead log holds at the end
// of a scenario's load: the pages each commit wrote, by the b-tree (table
// or index) they belong to. A commit writes every page its transaction
// dirtied, each as a frame of its own (two pwrite system calls), so pages
// per commit is what a batch of writes costs in I/O, and the b-trees with
// the most pages are where a write lands on a page no other write of the
// batch touched. The log restarts after each checkpoint, so this is a
// sample: the commits since the last restart.
func (h *harness) walPages(ctx context.Context) (string, error) {
	wal, err := os.ReadFile(h.sqlitePath() + "-wal")
	if err != nil {
		return "", err
	}
	frames, commits, err := walFrames(wal)
	if err != nil || commits == 0 {
		return "", err
	}
	db, err := h.openStoreDB("query_only(1)")
	if err != nil {
		return "", err
	}
	defer db.Close()
	// dbstat maps every page of the database to its b-tree by name.
	rows, err := db.QueryContext(ctx, `SELECT name, pageno FROM dbstat`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	owner := map[uint32]string{}
	for rows.Next() {
		var name string
		var page uint32
		if err := rows.Scan(&name, &page); err != nil {
			return "", err
		}
		owner[page] = name
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	by := map[string]int{}
	for _, p := range frames {
		name := owner[p]
		if name == "" {
			name = "(freed)"
		}
		by[name]++
	}
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return by[b] - by[a] })
	var sb strings.Builder
	fmt.Fprintf(&sb, "WAL sample of %d commits: %.1f pages per commit:", commits, float64(len(frames))/float64(commits))
	for i, n := range names {
		if i == 8 {
			break
		}
		fmt.Fprintf(&sb, " %s %.2f", n, float64(by[n])/float64(commits))
	}
	return sb.String(), nil
}

// walFrames parses a SQLite WAL file (https://sqlite.org/fileformat2.html#walformat):
// a 32-byte header, then frames of a 24-byte header and a page. It returns
// the page number of every frame of the current log (frames whose salts
// match the header's; a frame left from before the last restart does not)
// up to its last commit, and the number of commits (frames with a
// database size, the last frame of each transaction).
func walFrames(wal []byte) (pages []uint32, commits int, err error) {
	if len(wal) < 32 {
		return nil, 0, nil
	}
	if magic := binary.BigEndian.Uint32(wal[0:4]); magic != 0x377f0682 && magic != 0x377f0683 {
		return nil, 0, errors.New("not a SQLite WAL file")
	}
	pageSize := int(binary.BigEndian.Uint32(wal[8:12]))
	if pageSize < 512 || pageSize > 65536 {
		return nil, 0, fmt.Errorf("WAL page size %d", pageSize)
	}
	salt1, salt2 := wal[16:20], wal[20:24]
	var pending []uint32
	for off := 32; off+24+pageSize <= len(wal); off += 24 + pageSize {
		fh := wal[off : off+24]
		if string(fh[8:12]) != string(salt1) || string(fh[12:16]) != string(salt2) {
			break
		}
		pending = append(pending, binary.BigEndian.Uint32(fh[0:4]))
		if binary.BigEndian.Uint32(fh[4:8]) != 0 {
			pages = append(pages, pending...)
			pending = pending[:0]
			commits++
		}
	}
	return pages, commits, nil
}
