// Package sqlite is trail's embedded store: one log in one SQLite file
// (modernc.org/sqlite, WAL, synchronous=FULL).
//
// A Store appends through a single write connection, so that Append is one
// synced transaction, and reads through a separate pool, so that reads never
// wait for a commit. Records are keyed by seq (the rowid), so every
// secondary index ends in seq, which is what List's keyset paging on
// (time, seq) needs. Triggers abort every UPDATE and DELETE; with
// recursive_triggers=ON, INSERT OR REPLACE of a stored row fails too. The
// one exception is the keys table (keys.go), whose triggers allow a key's
// revocation, once, and its last use, forward.
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/sqlkeys"
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

// recordCols are the columns Append writes, in its argument order.
const recordCols = "seq, log, id, time, received_at, tenant, actor, actor_type, action, target, target_type, source, outcome, digest, hashes, bytes"

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

// schema creates the records table, its indexes and triggers (the meta and
// checkpoints tables are sqlkeys.StateSchema). Empty optional fields are
// stored as NULL, so that the partial indexes on tenant and target skip the
// records that have none.
const schema = `
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

CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'trail: records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'trail: records are append-only'); END;
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
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if err := createPrivate(cfg.Path); err != nil {
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
	if _, err := s.wc.ExecContext(ctx, sqlkeys.StateSchema+schema+sqlkeys.Schema); err != nil {
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

// Ping checks that the file can be read and written: it rewrites the
// header's user_version, unchanged, in a synced commit. Taking the write
// lock alone succeeds on a full disk, where every append fails.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w: %v", trail.ErrUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sqlite: ping: %w", errClosed)
	}
	var v int64
	if err := s.wc.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("sqlite: ping: %w: %v", trail.ErrUnavailable, err)
	}
	if _, err := s.wc.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		return fmt.Errorf("sqlite: ping: write: %w: %v", trail.ErrUnavailable, err)
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
