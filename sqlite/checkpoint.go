package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/trail-audit/trail"
)

// Head returns the store's log and its size.
func (s *Store) Head(ctx context.Context) (trail.Head, error) {
	return trail.Head{Log: s.log, Size: s.size.Load()}, nil
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
