package seglog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/sqlkeys"
)

// state is the synced SQLite file of checkpoints and keys. Writes are rare
// (a checkpoint a second at most) and go through w, one connection.
type state struct {
	mu     sync.Mutex
	w      *sql.DB
	r      *sql.DB
	closed bool
}

func stateDSN(path string, read bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "recursive_triggers(ON)")
	if read {
		q.Add("_pragma", "query_only(ON)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
	}
	return path + "?" + q.Encode()
}

// openState opens the state file, creating it private to the owner, and
// checks that it is of log.
func openState(path, log string) (*state, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	st := &state{}
	if st.w, err = sql.Open("sqlite", stateDSN(path, false)); err != nil {
		return nil, err
	}
	st.w.SetMaxOpenConns(1)
	ctx := context.Background()
	if _, err := st.w.ExecContext(ctx, sqlkeys.StateSchema+sqlkeys.Schema); err != nil {
		st.close()
		return nil, fmt.Errorf("%s: create schema: %w", path, err)
	}
	if _, err := st.w.ExecContext(ctx, "INSERT OR IGNORE INTO meta (key, value) VALUES ('log', ?), ('created', ?)",
		log, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		st.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var got string
	if err := st.w.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'log'").Scan(&got); err != nil || got != log {
		st.close()
		return nil, fmt.Errorf("%s holds log %q, not %q (Config.Log); a directory holds one log, fixed when it is created (%v)", path, got, log, err)
	}
	if st.r, err = sql.Open("sqlite", stateDSN(path, true)); err != nil {
		st.close()
		return nil, err
	}
	st.r.SetMaxOpenConns(4)
	return st, nil
}

// ping rewrites the header's user_version, unchanged, in a synced commit:
// it fails on a full or read-only disk.
func (st *state) ping(ctx context.Context) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	var v int64
	if err := st.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	_, err := st.w.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
	return err
}

func (st *state) close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	var errs []error
	if st.r != nil {
		errs = append(errs, st.r.Close())
	}
	if st.w != nil {
		errs = append(errs, st.w.Close())
	}
	return errors.Join(errs...)
}

// AddCheckpoint stores a checkpoint of the store's log, synced. Storing one
// that is already stored, byte for byte, does nothing.
func (s *Store) AddCheckpoint(ctx context.Context, log string, size int64, note []byte) error {
	if log != s.log {
		return fmt.Errorf("seglog: add checkpoint: log %q: this store holds log %q", log, s.log)
	}
	if size < 0 || size > s.size.Load() {
		return fmt.Errorf("seglog: add checkpoint: size %d is beyond log %q of %d records", size, s.log, s.size.Load())
	}
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if s.state.closed {
		return fmt.Errorf("seglog: add checkpoint: %w", errClosed)
	}
	_, err := s.state.w.ExecContext(ctx, `INSERT INTO checkpoints (log, size, note, created)
		SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM checkpoints WHERE log = ?1 AND size = ?2 AND note = ?3)`,
		log, size, note, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("seglog: add checkpoint of %s at %d: %w", log, size, err)
	}
	return nil
}

// Checkpoint returns the checkpoint of log at size, or the largest if
// size < 0. Of several at one size it returns the last stored.
func (s *Store) Checkpoint(ctx context.Context, log string, size int64) ([]byte, error) {
	var note []byte
	var err error
	if size < 0 {
		err = s.state.r.QueryRowContext(ctx, "SELECT note FROM checkpoints WHERE log = ? ORDER BY size DESC, id DESC LIMIT 1", log).Scan(&note)
	} else {
		err = s.state.r.QueryRowContext(ctx, "SELECT note FROM checkpoints WHERE log = ? AND size = ? ORDER BY id DESC LIMIT 1", log, size).Scan(&note)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("seglog: checkpoint of %s at size %d: %w", log, size, trail.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("seglog: checkpoint of %s at size %d: %w", log, size, err)
	}
	return note, nil
}
