// Package store keeps calls durably in SQLite (the embedded default) or
// PostgreSQL (several gateway replicas). Both engines share one
// implementation, SQL, written against database/sql; a small dialect covers
// what differs between them: placeholders, time encoding, row locks and the
// migration lock.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver

	"github.com/callgate/callgate/calls"
)

// SQL is a calls.Store on a SQL database. It is safe for concurrent use.
type SQL struct {
	d dialect
	// w runs every write. For SQLite it is a single connection: SQLite lets
	// one writer in at a time anyway, and queueing writers in the pool is
	// cheaper and fairer than letting them poll the file lock under
	// busy_timeout. For PostgreSQL w and r are the same pool.
	w *sql.DB
	// r runs reads that need no lock.
	r *sql.DB
	// children caches members and rosters by call version, so a change
	// to a large call does not reread them (see childCache).
	children childCache
	// groups run writes in shared transactions (see groupWriter): one on
	// SQLite, whose writes are serial anyway; several on PostgreSQL, where
	// writes to different calls run side by side on their own
	// connections.
	groups []*groupWriter
	// stmts and reads keep the writer's and the readers' prepared
	// statements; nil for PostgreSQL, whose driver caches statements by
	// itself.
	stmts, reads *stmtCache
	// stopCheckpoints ends SQLite's background checkpointer; nil for
	// PostgreSQL.
	stopCheckpoints func()
	// rooms caches FindIDByRoom; nil where other processes store calls too
	// (PostgreSQL).
	rooms *roomCache
	// dataVersion is SQLite's PRAGMA data_version as the writer last saw
	// it, 0 when unknown (see beginBatch).
	dataVersion atomic.Int64
}

var _ calls.Store = (*SQL)(nil)

// Engine names accepted by Open.
const (
	EngineSQLite   = "sqlite"
	EnginePostgres = "postgres"
)

// Open opens the store of the engine kind ("sqlite" or "postgres") at
// pathOrDSN: a file path for SQLite, a connection string for PostgreSQL.
func Open(ctx context.Context, kind, pathOrDSN string) (*SQL, error) {
	switch kind {
	case EngineSQLite:
		return OpenSQLite(ctx, pathOrDSN)
	case EnginePostgres:
		return OpenPostgres(ctx, pathOrDSN)
	}
	return nil, fmt.Errorf("store: unknown engine %q, want %q or %q", kind, EngineSQLite, EnginePostgres)
}

// sqlitePragmas apply to every SQLite connection. busy_timeout comes first
// so the pragmas after it wait for a lock rather than fail. synchronous
// NORMAL is the usual WAL setting: a commit survives a process crash, and
// only a power loss can drop the last few. A large store (a million calls
// is 2 GB) needs more than SQLite's default 2 MB of page cache per
// connection, or every lookup rereads the b-trees' inner pages from the
// file: the cache grows to cache_size only as pages are read, and reads of
// the file go through a shared memory map (up to 2 GB, SQLite's limit)
// rather than a copy per page
// (BENCHMARKS.md, "A store with 1,000,000 calls").
var sqlitePragmas = []string{"busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)", "cache_size(-32768)", "mmap_size(2147418112)"}

// OpenSQLite opens (creating it and its directory if need be) the SQLite
// database file at path and brings its schema up to date.
func OpenSQLite(ctx context.Context, path string) (*SQL, error) {
	if path == "" {
		return nil, errors.New("store: sqlite path is empty")
	}
	// The driver reads everything after '?' as connection parameters.
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("store: sqlite path %q must not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
	}

	wq := url.Values{}
	for _, p := range sqlitePragmas {
		wq.Add("_pragma", p)
	}
	// WAL lets readers run while a write is in progress; it is a property of
	// the file, so setting it on the writer is enough.
	wq.Add("_pragma", "journal_mode(WAL)")
	// The commit that fills the WAL past 1,000 pages would copy it into
	// the database file and fsync, on the request's path (a 10-20 ms
	// stall every few dozen calls under load); the checkpointer does it
	// in the background instead.
	wq.Add("_pragma", "wal_autocheckpoint(0)")
	// Every write runs in a savepoint of a shared transaction (group
	// commit), and rolling back to one needs the pages' old contents: kept
	// in a temporary file, that is a write system call per page touched.
	// In memory it costs a copy. (The larger page cache of sqlitePragmas
	// also keeps a big batch from spilling dirty pages into the WAL before
	// it commits.)
	wq.Add("_pragma", "temp_store(MEMORY)")
	// BEGIN IMMEDIATE takes the write lock up front. A deferred transaction
	// that reads and then writes can fail with SQLITE_BUSY when another
	// process wrote in between, and busy_timeout cannot help it.
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	s := &SQL{d: sqliteDialect, w: w}
	if err := migrateSQLite(ctx, s); err != nil {
		w.Close()
		return nil, err
	}

	rq := url.Values{}
	for _, p := range sqlitePragmas {
		rq.Add("_pragma", p)
	}
	// Reader connections refuse writes, so a write sent to the wrong pool
	// fails loudly instead of racing the single writer.
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	s.r = r
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	ck, err := sql.Open("sqlite", path+"?"+url.Values{"_pragma": {"busy_timeout(10000)"}}.Encode())
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	s.stopCheckpoints = checkpoints(ck, checkpointEvery)
	s.stmts = newStmtCache(w)
	s.reads = newStmtCache(r)
	s.rooms = newRoomCache()
	g := newGroupWriter(w, s.stmts, s.remember, s.forget, s.applyTogether, s.flush)
	g.begin = s.beginBatch
	g.groupWait, g.busyWithin = defaultGroupWait, groupWaitBusy
	s.groups = []*groupWriter{g.start()}
	return s, nil
}

// checkpointEvery is how often the background checkpointer copies the
// WAL into the database file.
const checkpointEvery = time.Second

// checkpoints runs a passive checkpoint every interval on its own
// connection: it waits for no reader or writer and none waits for it, so
// commits never pay for copying the WAL; a checkpoint that cannot finish
// (a reader on an old snapshot) finishes on a later tick. The returned
// func stops it and closes db.
func checkpoints(db *sql.DB, every time.Duration) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, _ = db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
			cancel()
		}
	}()
	return sync.OnceFunc(func() {
		close(done)
		<-stopped
		db.Close()
	})
}

// postgresWriters is how many group writers a PostgreSQL store runs, each
// with at most one transaction (connection) at a time.
const postgresWriters = 8

// postgresMaxConns bounds the pool so a burst of requests queues in the
// gateway instead of exhausting the server's max_connections, which several
// replicas share.
const postgresMaxConns = 16

// OpenPostgres connects to the PostgreSQL database named by dsn (URL or
// key=value form; runtime parameters such as search_path are passed on) and
// brings its schema up to date.
func OpenPostgres(ctx context.Context, dsn string) (*SQL, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// Not wrapped: pgx redacts the password from the DSN it quotes only
		// on a best-effort basis, and secrets must stay out of logs.
		return nil, errors.New("store: postgres connection string is malformed (details withheld, as it may hold a password)")
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)

	s := &SQL{d: postgresDialect, w: db, r: db}
	if err := s.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// Group commit here too: a busy call's changes otherwise queue on its
	// row lock, each then waiting for its own WAL flush.
	for range postgresWriters {
		g := newGroupWriter(db, nil, s.remember, s.forget, s.applyTogether, s.flush)
		g.retryable = deadlocked
		s.groups = append(s.groups, g.start())
	}
	return s, nil
}

// deadlocked reports a PostgreSQL deadlock or serialization failure: the
// statement lost to another transaction and may succeed in a later one.
func deadlocked(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// Ping checks that the database answers.
func (s *SQL) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping %s: %w", s.d.name, err)
	}
	if s.r != s.w {
		if err := s.r.PingContext(ctx); err != nil {
			return fmt.Errorf("store: ping %s: %w", s.d.name, err)
		}
	}
	return nil
}

// Close closes the database. Calls in flight finish first.
func (s *SQL) Close() error {
	var errs []error
	for _, g := range s.groups {
		g.close()
	}
	if s.stmts != nil {
		s.stmts.close()
	}
	if s.reads != nil {
		s.reads.close()
	}
	if s.stopCheckpoints != nil {
		s.stopCheckpoints()
	}
	// The writer closes last: closing SQLite's last connection checkpoints
	// the WAL into the database file.
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close %s: %w", s.d.name, err)
	}
	return nil
}

// dialect is what differs between the engines.
type dialect struct {
	name string
	// dollar: placeholders are $1, $2… rather than ?.
	dollar bool
	// forUpdate locks the rows a SELECT reads until the transaction ends.
	// SQLite needs none: an immediate transaction already excludes every
	// other writer.
	forUpdate string
	// skipLocked, on the SELECT that picks work to claim, lets concurrent
	// claimers pass over rows another claim holds instead of waiting for
	// them. SQLite needs none: its one writer claims alone.
	skipLocked string
	// migrationLock is run first in the migration transaction so that two
	// processes opening one database apply migrations one after the other.
	migrationLock string
	// timeArg encodes a time as a query argument.
	timeArg func(time.Time) any
}

var sqliteDialect = dialect{
	name: EngineSQLite,
	// INTEGER microseconds: exact, compact, and ordered like the times.
	timeArg: func(t time.Time) any { return t.UnixMicro() },
}

var postgresDialect = dialect{
	name:       EnginePostgres,
	dollar:     true,
	forUpdate:  " FOR UPDATE",
	skipLocked: " FOR UPDATE SKIP LOCKED",
	// Keyed on the schema, so tests that give each store its own schema do
	// not wait on each other, while replicas sharing one schema do.
	migrationLock: `SELECT pg_advisory_xact_lock(hashtext('callgate.migrate:' || coalesce(current_schema(), '')))`,
	// TIMESTAMPTZ keeps microseconds; truncating here rather than letting
	// the server round makes the value stored equal the value returned.
	timeArg: func(t time.Time) any { return utcMicro(t) },
}

// q rewrites a query written with ? placeholders for the dialect. Queries
// in this package never contain a literal '?'.
func (d dialect) q(query string) string {
	if !d.dollar {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// nullTimeArg encodes an optional time.
func (d dialect) nullTimeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.timeArg(*t)
}

// utcMicro is the form every stored time takes: UTC, whole microseconds, no
// monotonic reading. Values are returned in this form so that a call read
// back equals the call as stored.
func utcMicro(t time.Time) time.Time { return calls.StoredTime(t) }

// timeCol scans a time stored by either dialect.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case int64:
		*c.t = time.UnixMicro(v).UTC()
	case time.Time:
		*c.t = utcMicro(v)
	default:
		return fmt.Errorf("store: cannot read %T as a time", src)
	}
	return nil
}

// nullTimeCol scans an optional time.
type nullTimeCol struct{ t **time.Time }

func (c nullTimeCol) Scan(src any) error {
	if src == nil {
		*c.t = nil
		return nil
	}
	var t time.Time
	if err := (timeCol{&t}).Scan(src); err != nil {
		return err
	}
	*c.t = &t
	return nil
}

// migrateSQLite migrates, retrying while the file is busy. When several
// processes open a new file at once, switching it to WAL needs a lock that
// SQLite reports as SQLITE_BUSY at once, without waiting out busy_timeout;
// a short backoff lets the first opener finish.
func migrateSQLite(ctx context.Context, s *SQL) error {
	delay := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.migrate(ctx)
		var se *sqlite.Error
		if err == nil || attempt == 8 || !errors.As(err, &se) || se.Code()&0xff != 5 /* SQLITE_BUSY */ {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay *= 2
	}
}
