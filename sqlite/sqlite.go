// Package sqlite is trail's embedded store: one log in one SQLite file
// (modernc.org/sqlite, WAL, synchronous=FULL).
//
// A Store appends through a single write connection, so that Append is one
// synced transaction, and reads through a separate pool, so that reads never
// wait for a commit. Records are keyed by seq (the rowid), so every
// secondary index ends in seq, which is what List's keyset paging on
// (time, seq) needs. Triggers abort every UPDATE and DELETE; with
// recursive_triggers=ON, INSERT OR REPLACE of a stored row fails too.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// Config configures a Store.
type Config struct {
	// Path is the database file. Its directory is created if need be.
	Path string

	// Log is the name of the log the file holds; default "main". It is
	// fixed when the file is created.
	Log string

	// CacheKiB is the page cache of the write connection in KiB; the read
	// connections share as much again. Default 65536.
	CacheKiB int
}

// DefaultLog is the log name of a Config without one.
const DefaultLog = "main"

// Store is a trail.Store over one SQLite file.
type Store struct {
	log  string
	path string
	rdb  *sql.DB // read pool
	wdb  *sql.DB // the single write connection's pool

	size atomic.Int64 // records in the log: the next seq

	mu     sync.Mutex // guards the write connection and what follows
	wc     *sql.Conn
	stmts  map[string]*sql.Stmt // the write connection's statements, by query
	args   []any                // Append's argument buffer, reused
	closed bool
}

var _ trail.Store = (*Store)(nil)

// rowsPerInsert is how many records one INSERT statement writes. Fewer,
// larger statements cut the per-statement cost of database/sql and the
// driver; 16 columns times 64 rows stays well under SQLite's limit of 32766
// parameters.
const rowsPerInsert = 64

// recordCols are the columns Append writes, in its argument order.
const recordCols = "seq, log, id, time, received_at, tenant, actor, actor_type, action, target, target_type, source, outcome, digest, hashes, bytes"

const nRecordCols = 16

// pageSize is the page size of new files. Pages of 8 KiB cost less CPU per
// append than 4 KiB ones (fewer WAL frames and b-tree splits), measured
// with the indexes below.
const pageSize = 8192

// walAutocheckpoint is the WAL size, in pages, that triggers a checkpoint
// on commit: 64 MiB. A larger WAL checkpoints less often, and each
// checkpoint writes a hot index page once for many commits.
const walAutocheckpoint = 8192

// readCols are the columns reads select, in the order query scans them.
const readCols = recordCols

// schema creates the tables, indexes and triggers. Empty optional fields are
// stored as NULL, so that the partial indexes on tenant and target skip the
// records that have none.
const schema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS records (
	seq         INTEGER PRIMARY KEY,
	log         TEXT NOT NULL,
	id          TEXT NOT NULL UNIQUE,
	time        INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	tenant      TEXT,
	actor       TEXT NOT NULL,
	actor_type  TEXT,
	action      TEXT NOT NULL,
	target      TEXT,
	target_type TEXT,
	source      TEXT NOT NULL,
	outcome     TEXT NOT NULL,
	digest      BLOB NOT NULL,
	hashes      BLOB NOT NULL,
	bytes       BLOB NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS records_time ON records (time);
CREATE INDEX IF NOT EXISTS records_tenant ON records (tenant, time) WHERE tenant IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_actor ON records (actor, time);
CREATE INDEX IF NOT EXISTS records_action ON records (action, time);
CREATE INDEX IF NOT EXISTS records_target ON records (target, time) WHERE target IS NOT NULL;

CREATE TABLE IF NOT EXISTS checkpoints (
	id      INTEGER PRIMARY KEY,
	log     TEXT NOT NULL,
	size    INTEGER NOT NULL,
	note    BLOB NOT NULL,
	created INTEGER NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS checkpoints_size ON checkpoints (log, size);

CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'trail: records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'trail: records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'trail: checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'trail: checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS meta_no_update BEFORE UPDATE ON meta
BEGIN SELECT RAISE(ABORT, 'trail: meta is append-only'); END;
CREATE TRIGGER IF NOT EXISTS meta_no_delete BEFORE DELETE ON meta
BEGIN SELECT RAISE(ABORT, 'trail: meta is append-only'); END;
`

// Open opens the database file at cfg.Path, creating it with the schema if
// it does not exist. A file holds one log: opening it with another
// Config.Log is an error.
func Open(cfg Config) (*Store, error) {
	if cfg.Log == "" {
		cfg.Log = DefaultLog
	}
	if cfg.CacheKiB <= 0 {
		cfg.CacheKiB = 64 << 10
	}
	if cfg.Path == "" {
		return nil, errors.New("sqlite: open: Config.Path is empty")
	}
	if strings.ContainsAny(cfg.Path, "?#") {
		return nil, fmt.Errorf("sqlite: open %s: the path may not hold '?' or '#'", cfg.Path)
	}
	if err := trail.ValidateID(cfg.Log); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: log name %q: %s", cfg.Path, cfg.Log, trail.ErrorMessage(err))
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}

	s := &Store{log: cfg.Log, path: cfg.Path, stmts: make(map[string]*sql.Stmt)}
	ctx := context.Background()
	var err error
	if s.wdb, err = sql.Open("sqlite", dsn(cfg, false)); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	if s.wc, err = s.wdb.Conn(ctx); err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	if err := s.init(ctx); err != nil {
		s.wc.Close()
		s.wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}

	// The read pool opens after the schema exists and the file is in WAL
	// mode; its connections may not write.
	if s.rdb, err = sql.Open("sqlite", dsn(cfg, true)); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	n := readConns()
	s.rdb.SetMaxOpenConns(n)
	s.rdb.SetMaxIdleConns(n)
	if err := s.rdb.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	return s, nil
}

// readConns is the size of the read pool.
func readConns() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// dsn returns the driver's data source name for the write connection or a
// read connection.
func dsn(cfg Config, read bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	cache := cfg.CacheKiB
	if read {
		// Readers share the OS page cache; the writer's index pages are
		// the ones worth keeping hot. This bounds memory to 2x CacheKiB.
		cache = max(cfg.CacheKiB/(2*readConns()), 2048)
	}
	q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", cache))
	q.Add("_pragma", "recursive_triggers(ON)")
	q.Add("_pragma", "temp_store(MEMORY)")
	if read {
		q.Add("_pragma", "query_only(ON)")
	} else {
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walAutocheckpoint))
		q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walAutocheckpoint*pageSize))
	}
	return cfg.Path + "?" + q.Encode()
}

// init creates the schema, checks the log name and reads the size.
func (s *Store) init(ctx context.Context) (err error) {
	// The page size of a new file must be set before it turns to WAL.
	if _, err := s.wc.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d", pageSize)); err != nil {
		return err
	}
	var mode string
	if err := s.wc.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	if _, err := s.wc.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.wc.ExecContext(ctx, "ROLLBACK")
		}
	}()
	if _, err := s.wc.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	var log string
	err = s.wc.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'log'").Scan(&log)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = s.wc.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('log', ?), ('schema', '1'), ('created', ?)",
			s.log, time.Now().UTC().Format(time.RFC3339Nano))
		if err != nil {
			return err
		}
	case err != nil:
		return err
	case log != s.log:
		return fmt.Errorf("the file holds log %q, not %q (Config.Log); a file holds one log, fixed when it is created", log, s.log)
	}
	var size int64
	if err := s.wc.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq) + 1, 0) FROM records").Scan(&size); err != nil {
		return err
	}
	s.size.Store(size)
	_, err = s.wc.ExecContext(ctx, "COMMIT")
	return err
}

// DB returns the read pool. Its connections are query-only: a test that
// means to tamper with the file opens it itself.
func (s *Store) DB() *sql.DB { return s.rdb }

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Head returns the store's log and its size.
func (s *Store) Head(ctx context.Context) (trail.Head, error) {
	return trail.Head{Log: s.log, Size: s.size.Load()}, nil
}

// Append stores entries in one synced transaction. See trail.Store.
func (s *Store) Append(ctx context.Context, entries []*trail.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sqlite: append: %w", errClosed)
	}
	size := s.size.Load()
	first := entries[0].Seq
	if first < size {
		return fmt.Errorf("sqlite: append at seq %d: log %q already has %d records: %w", first, s.log, size, trail.ErrFenced)
	}
	if first > size {
		return fmt.Errorf("sqlite: append at seq %d: log %q has %d records; seqs must start at the size", first, s.log, size)
	}
	for i, e := range entries {
		if e.Log != s.log {
			return fmt.Errorf("sqlite: append: entry %d is of log %q; this file holds log %q", i, e.Log, s.log)
		}
		if e.Seq != first+int64(i) {
			return fmt.Errorf("sqlite: append: entry %d has seq %d, want %d; seqs must be dense", i, e.Seq, first+int64(i))
		}
		if want := tlog.StoredHashCount(e.Seq+1) - tlog.StoredHashCount(e.Seq); int64(len(e.Hashes)) != want {
			return fmt.Errorf("sqlite: append: entry %d (seq %d) has %d stored hashes, want %d", i, e.Seq, len(e.Hashes), want)
		}
	}

	// Once the transaction begins it runs to its end, commit or rollback:
	// canceling a commit midway would leave its outcome unknown.
	bg := context.WithoutCancel(ctx)
	if err := s.insert(bg, entries); err != nil {
		if _, rerr := s.wc.ExecContext(bg, "ROLLBACK"); rerr != nil && !strings.Contains(rerr.Error(), "no transaction") {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return s.appendError(bg, entries, err)
	}
	s.size.Store(first + int64(len(entries)))
	return nil
}

// insert writes entries in a transaction and commits it.
//
// Rows after seq 0 are inserted without their seq: SQLite gives each the
// largest rowid plus one, which is the seq, since the log is dense and no
// one else can write in the transaction. Leaving the rowid to SQLite and
// INSERT OR ROLLBACK let SQLite skip the statement journal that a
// multi-row INSERT would otherwise keep (about a tenth of Append's CPU);
// the check of the log's end and of each statement's last rowid keep the
// seqs exact.
func (s *Store) insert(ctx context.Context, entries []*trail.Entry) error {
	begin, err := s.stmt(ctx, "BEGIN IMMEDIATE")
	if err != nil {
		return err
	}
	if _, err := begin.ExecContext(ctx); err != nil {
		return err
	}
	first := entries[0].Seq
	end, err := s.stmt(ctx, "SELECT COALESCE(MAX(seq) + 1, 0) FROM records")
	if err != nil {
		return err
	}
	var next int64
	if err := end.QueryRowContext(ctx).Scan(&next); err != nil {
		return err
	}
	if next != first {
		return &takenError{size: next}
	}

	// One buffer holds every entry's hashes, to allocate once per batch.
	nh := 0
	for _, e := range entries {
		nh += len(e.Hashes)
	}
	hbuf := make([]byte, 0, nh*tlog.HashSize)
	for off := 0; off < len(entries); {
		n := min(rowsPerInsert, len(entries)-off)
		withSeq := entries[off].Seq == 0 // an empty table's next rowid is 1, not 0
		if withSeq {
			n = 1
		}
		stmt, err := s.insertStmt(ctx, n, withSeq)
		if err != nil {
			return err
		}
		args := s.args[:0]
		for _, e := range entries[off : off+n] {
			start := len(hbuf)
			for i := range e.Hashes {
				hbuf = append(hbuf, e.Hashes[i][:]...)
			}
			tg := e.TargetOrZero()
			if withSeq {
				args = append(args, e.Seq)
			}
			args = append(args, s.log, e.ID, e.Time.UnixNano(), e.ReceivedAt.UnixNano(),
				nullable(e.Tenant), e.Actor.ID, nullable(e.Actor.Type), e.Action,
				nullable(tg.ID), nullable(tg.Type), e.Source.Service, e.Outcome,
				e.Digest[:], hbuf[start:len(hbuf):len(hbuf)], e.Bytes)
		}
		s.args = args
		res, err := stmt.ExecContext(ctx, args...)
		clear(args) // let the batch be collected
		if err != nil {
			return err
		}
		last, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if want := entries[off+n-1].Seq; last != want {
			return fmt.Errorf("inserted seq %d, want %d", last, want)
		}
		off += n
	}
	commit, err := s.stmt(ctx, "COMMIT")
	if err != nil {
		return err
	}
	_, err = commit.ExecContext(ctx)
	return err
}

// takenError says that the log already holds the seqs an append wanted.
type takenError struct{ size int64 }

func (e *takenError) Error() string { return fmt.Sprintf("the log already has %d records", e.size) }

// insertStmt returns the prepared INSERT of n rows, with or without their
// seqs.
func (s *Store) insertStmt(ctx context.Context, n int, withSeq bool) (*sql.Stmt, error) {
	cols, nc := recordCols, nRecordCols
	if !withSeq {
		cols, nc = strings.TrimPrefix(recordCols, "seq, "), nRecordCols-1
	}
	row := "(" + strings.Repeat("?, ", nc-1) + "?)"
	return s.stmt(ctx, "INSERT OR ROLLBACK INTO records ("+cols+") VALUES "+strings.Repeat(row+", ", n-1)+row)
}

// stmt returns the write connection's prepared statement of query, so that
// the hot path parses no SQL. The caller holds s.mu.
func (s *Store) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := s.stmts[query]; st != nil {
		return st, nil
	}
	st, err := s.wc.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare %.40q: %w", query, err)
	}
	s.stmts[query] = st
	return st, nil
}

// nullable stores an empty optional field as NULL.
func nullable(v string) any {
	if v == "" {
		return nil
	}
	return v
}

// appendError explains why a transaction of entries failed, after its
// rollback: a taken seq (ErrFenced), an id that is stored or repeated
// (ECONFLICT), a locked file (ErrUnavailable), or err itself.
func (s *Store) appendError(ctx context.Context, entries []*trail.Entry, err error) error {
	first := entries[0].Seq
	var taken *takenError
	if errors.As(err, &taken) {
		// Another writer (another process or Store on this file) took
		// the seq. Head now reports the true size.
		s.size.Store(taken.size)
		return fmt.Errorf("sqlite: append at seq %d: log %q already has %d records: %w", first, s.log, taken.size, trail.ErrFenced)
	}
	var se *sqlite3.Error
	if !errors.As(err, &se) {
		return fmt.Errorf("sqlite: append at seq %d: %w", first, err)
	}
	switch se.Code() {
	case sqlite3lib.SQLITE_CONSTRAINT_UNIQUE:
		ids := make([]string, len(entries))
		seen := make(map[string]bool, len(entries))
		for i, e := range entries {
			ids[i] = e.ID
			if seen[e.ID] {
				return trail.Errorf(trail.ECONFLICT, "id %q appears twice in the batch; nothing was stored", e.ID)
			}
			seen[e.ID] = true
		}
		stored, lerr := s.lookup(ctx, s.wc, ids)
		if lerr != nil {
			return fmt.Errorf("sqlite: append at seq %d: %w (and looking up the ids: %v)", first, err, lerr)
		}
		for _, e := range entries {
			if p := stored[e.ID]; p != nil {
				return trail.Errorf(trail.ECONFLICT, "id %q is already stored (log %s, seq %d); nothing was stored", e.ID, p.Log, p.Seq)
			}
		}
	case sqlite3lib.SQLITE_BUSY, sqlite3lib.SQLITE_BUSY_SNAPSHOT, sqlite3lib.SQLITE_BUSY_TIMEOUT, sqlite3lib.SQLITE_LOCKED:
		return fmt.Errorf("sqlite: append at seq %d: %w: %v", first, trail.ErrUnavailable, err)
	}
	return fmt.Errorf("sqlite: append at seq %d: %w", first, err)
}

// Lookup returns the stored entries with the ids. See trail.Store.
func (s *Store) Lookup(ctx context.Context, ids []string) (map[string]*trail.Entry, error) {
	m, err := s.lookup(ctx, s.rdb, ids)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lookup: %w", err)
	}
	return m, nil
}

// querier is what reads need of a *sql.DB or *sql.Conn.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// maxParams bounds the parameters of an IN list.
const maxParams = 500

func (s *Store) lookup(ctx context.Context, q querier, ids []string) (map[string]*trail.Entry, error) {
	m := make(map[string]*trail.Entry)
	err := inChunks(ids, func(args []any) error {
		return s.query(ctx, q, "SELECT "+readCols+" FROM records WHERE id IN ("+params(len(args))+")", args, func(e *trail.Entry) error {
			m[e.ID] = e
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// inChunks calls fn with vals as query arguments, at most maxParams at a
// time.
func inChunks[T any](vals []T, fn func(args []any) error) error {
	args := make([]any, 0, min(len(vals), maxParams))
	for len(vals) > 0 {
		n := min(len(vals), maxParams)
		args = args[:0]
		for _, v := range vals[:n] {
			args = append(args, v)
		}
		vals = vals[n:]
		if err := fn(args); err != nil {
			return err
		}
	}
	return nil
}

// params returns n comma-separated placeholders.
func params(n int) string {
	return strings.Repeat("?, ", n-1) + "?"
}

// Get returns the entry with the id, its Record parsed from its bytes.
func (s *Store) Get(ctx context.Context, id string) (*trail.Entry, error) {
	var seq int64
	var digest, hashes, b []byte
	err := s.rdb.QueryRowContext(ctx, "SELECT seq, digest, hashes, bytes FROM records WHERE id = ?", id).Scan(&seq, &digest, &hashes, &b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get %q: %w", id, trail.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: get %q: %w", id, err)
	}
	hs, err := decodeHashes(hashes)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get %q: seq %d: %w", id, seq, err)
	}
	d, err := decodeDigest(digest)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get %q: seq %d: %w", id, seq, err)
	}
	e, err := trail.ParseEntry(b, d, hs)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get %q: seq %d: stored bytes: %w", id, seq, err)
	}
	return e, nil
}

// List returns the entries that match f. See trail.Store. The Record of each
// entry is filled from the index columns: ID, Log, Seq, Time, ReceivedAt,
// Tenant, Actor.ID and Type, Action, Target, Source.Service and Outcome.
func (s *Store) List(ctx context.Context, f *trail.Filter) ([]*trail.Entry, error) {
	q, args := s.listQuery(f)
	var out []*trail.Entry
	if f.Limit > 0 {
		out = make([]*trail.Entry, 0, min(f.Limit, 1000))
	}
	err := s.query(ctx, s.rdb, q, args, func(e *trail.Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	return out, nil
}

// listQuery builds List's SQL. Equality filters and the time range let
// SQLite walk one (field, time) index, whose entries end in seq, in the
// order of the keyset (time, seq); the log is the same for every row.
func (s *Store) listQuery(f *trail.Filter) (string, []any) {
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("tenant", f.Tenant)
	eq("actor", f.Actor)
	eq("actor_type", f.ActorType)
	if f.ActionPrefix {
		if f.Action != "" {
			// A range rather than LIKE, so that the action index serves it.
			where = append(where, "action >= ? AND action < ?")
			args = append(args, f.Action, f.Action+"\xff")
		}
	} else {
		eq("action", f.Action)
	}
	eq("target", f.Target)
	eq("target_type", f.TargetType)
	eq("source", f.Source)
	eq("outcome", f.Outcome)
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, f.Until.UnixNano())
	}
	if c := f.After; c != nil {
		// Order is (time, log, seq) and every row has log s.log: a cursor
		// of another log is before or after all rows of its time.
		gt := ">"
		if f.Desc {
			gt = "<"
		}
		switch strings.Compare(s.log, c.Log) {
		case 1:
			where = append(where, "time "+gt+"= ?")
			args = append(args, c.Time)
		case -1:
			where = append(where, "time "+gt+" ?")
			args = append(args, c.Time)
		default:
			where = append(where, "time "+gt+"= ? AND (time "+gt+" ? OR seq "+gt+" ?)")
			args = append(args, c.Time, c.Time, c.Seq)
		}
	}
	order := " ORDER BY time, seq"
	if f.Desc {
		order = " ORDER BY time DESC, seq DESC"
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	if f.Limit <= 0 {
		return "SELECT " + readCols + " FROM records" + cond + order, args
	}
	limit := " LIMIT " + strconv.Itoa(f.Limit)
	if f.ActionPrefix && f.Action != "" {
		// A range of actions comes out of the action index unordered by
		// time. Sort the keys alone, not the rows with their bytes, and
		// then read just the rows of one page.
		return "SELECT " + readCols + " FROM records WHERE seq IN (SELECT seq FROM records" + cond + order + limit + ")" + order, args
	}
	return "SELECT " + readCols + " FROM records" + cond + order + limit, args
}

// Scan calls fn for the entries of log with from <= seq < to, in seq order.
// Entries are as List returns them.
func (s *Store) Scan(ctx context.Context, log string, from, to int64, fn func(*trail.Entry) error) error {
	if log != s.log || from >= to {
		return nil
	}
	err := s.query(ctx, s.rdb, "SELECT "+readCols+" FROM records WHERE seq >= ? AND seq < ? ORDER BY seq", []any{from, to}, fn)
	if err != nil {
		return fmt.Errorf("sqlite: scan %s [%d, %d): %w", log, from, to, err)
	}
	return nil
}

// query runs a query of readCols and calls fn for each row's entry.
func (s *Store) query(ctx context.Context, q querier, query string, args []any, fn func(*trail.Entry) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		t, recv                                 int64
		tenant, actorType, target, targetType   sql.NullString
		digest, hashes                          sql.RawBytes
		log, id, actor, action, source, outcome string
		seq                                     int64
	)
	for rows.Next() {
		e := new(trail.Entry)
		err := rows.Scan(&seq, &log, &id, &t, &recv, &tenant, &actor, &actorType, &action,
			&target, &targetType, &source, &outcome, &digest, &hashes, &e.Bytes)
		if err != nil {
			return err
		}
		if e.Digest, err = decodeDigest(digest); err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		if e.Hashes, err = decodeHashes(hashes); err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		e.ID, e.Log, e.Seq = id, log, seq
		e.Time = time.Unix(0, t).UTC()
		e.ReceivedAt = time.Unix(0, recv).UTC()
		e.Tenant, e.Action, e.Outcome = tenant.String, action, outcome
		e.Actor = trail.Actor{ID: actor, Type: actorType.String}
		if target.Valid || targetType.Valid {
			e.Target = &trail.Target{ID: target.String, Type: targetType.String}
		}
		e.Source.Service = source
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

func decodeHashes(b []byte) ([]tlog.Hash, error) {
	if len(b) == 0 || len(b)%tlog.HashSize != 0 {
		return nil, fmt.Errorf("stored hashes are %d bytes, not a positive multiple of %d", len(b), tlog.HashSize)
	}
	hs := make([]tlog.Hash, len(b)/tlog.HashSize)
	for i := range hs {
		copy(hs[i][:], b[i*tlog.HashSize:])
	}
	return hs, nil
}

func decodeDigest(b []byte) (trail.Digest, error) {
	var d trail.Digest
	if len(b) != len(d) {
		return d, fmt.Errorf("stored digest is %d bytes, not %d", len(b), len(d))
	}
	copy(d[:], b)
	return d, nil
}

// ReadHashes returns the stored hashes of log at the tlog indexes.
func (s *Store) ReadHashes(ctx context.Context, log string, indexes []int64) ([]tlog.Hash, error) {
	hs, err := trail.ReadHashes(indexes, func(seqs []int64) (map[int64][]tlog.Hash, error) {
		m := make(map[int64][]tlog.Hash, len(seqs))
		if log != s.log {
			return m, nil
		}
		err := inChunks(seqs, func(args []any) error { return s.readHashes(ctx, m, args) })
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: read hashes of %s: %w", log, err)
	}
	return hs, nil
}

func (s *Store) readHashes(ctx context.Context, m map[int64][]tlog.Hash, seqs []any) error {
	rows, err := s.rdb.QueryContext(ctx, "SELECT seq, hashes FROM records WHERE seq IN ("+params(len(seqs))+")", seqs...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var b sql.RawBytes
		if err := rows.Scan(&seq, &b); err != nil {
			return err
		}
		if m[seq], err = decodeHashes(b); err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
	}
	return rows.Err()
}

// AddCheckpoint stores a checkpoint of the store's log. Storing one that is
// already stored, byte for byte, does nothing.
func (s *Store) AddCheckpoint(ctx context.Context, log string, size int64, note []byte) error {
	if log != s.log {
		return fmt.Errorf("sqlite: add checkpoint: log %q: this file holds log %q", log, s.log)
	}
	if size < 0 || size > s.size.Load() {
		return fmt.Errorf("sqlite: add checkpoint: size %d is beyond log %q of %d records", size, s.log, s.size.Load())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sqlite: add checkpoint: %w", errClosed)
	}
	_, err := s.wc.ExecContext(ctx, `INSERT INTO checkpoints (log, size, note, created)
		SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM checkpoints WHERE log = ?1 AND size = ?2 AND note = ?3)`,
		log, size, note, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("sqlite: add checkpoint of %s at %d: %w", log, size, err)
	}
	return nil
}

// Checkpoint returns the checkpoint of log at size, or the largest if
// size < 0. Of several at one size it returns the last stored.
func (s *Store) Checkpoint(ctx context.Context, log string, size int64) ([]byte, error) {
	var note []byte
	var err error
	if size < 0 {
		err = s.rdb.QueryRowContext(ctx, "SELECT note FROM checkpoints WHERE log = ? ORDER BY size DESC, id DESC LIMIT 1", log).Scan(&note)
	} else {
		err = s.rdb.QueryRowContext(ctx, "SELECT note FROM checkpoints WHERE log = ? AND size = ? ORDER BY id DESC LIMIT 1", log, size).Scan(&note)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: checkpoint of %s at size %d: %w", log, size, trail.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: checkpoint of %s at size %d: %w", log, size, err)
	}
	return note, nil
}

// Logs returns the store's one log and its size.
func (s *Store) Logs(ctx context.Context) ([]trail.Head, error) {
	return []trail.Head{{Log: s.log, Size: s.size.Load()}}, nil
}

// Ping checks that the file can be read and that the write lock can be
// taken.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w: %v", trail.ErrUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sqlite: ping: %w", errClosed)
	}
	if _, err := s.wc.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: ping: %w: %v", trail.ErrUnavailable, err)
	}
	if _, err := s.wc.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

var errClosed = errors.New("store is closed")

// Close closes the store. Appends in progress finish first.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.wc != nil {
		errs = append(errs, s.wc.Close())
	}
	errs = append(errs, s.wdb.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}
