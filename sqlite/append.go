package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// rowsPerInsert is how many records one INSERT statement writes. Fewer,
// larger statements cut the per-statement cost of database/sql and the
// driver; 16 columns times 64 rows stays well under SQLite's limit of 32766
// parameters.
const rowsPerInsert = 64

const nRecordCols = 16

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
	if err := trail.CheckAppend(s.log, s.size.Load(), entries); err != nil {
		return fmt.Errorf("sqlite: %w", err)
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
	s.size.Store(entries[0].Seq + int64(len(entries)))
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
			hbuf = trail.AppendHashes(hbuf, e.Hashes)
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
// (ErrDuplicateID, naming it), a locked file (ErrUnavailable), or err
// itself. A duplicate is only reported: replay or conflict is the
// ingester's decision.
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
				return fmt.Errorf("sqlite: append at seq %d: id %q appears twice in the batch; nothing was stored: %w", first, e.ID, trail.ErrDuplicateID)
			}
			seen[e.ID] = true
		}
		stored, lerr := s.lookup(ctx, s.wc, ids)
		if lerr != nil {
			return fmt.Errorf("sqlite: append at seq %d: %w (and looking up the ids: %v)", first, err, lerr)
		}
		for _, e := range entries {
			if p := stored[e.ID]; p != nil {
				return fmt.Errorf("sqlite: append at seq %d: id %q is already stored (log %s, seq %d); nothing was stored: %w", first, e.ID, p.Log, p.Seq, trail.ErrDuplicateID)
			}
		}
	case sqlite3lib.SQLITE_BUSY, sqlite3lib.SQLITE_BUSY_SNAPSHOT, sqlite3lib.SQLITE_BUSY_TIMEOUT, sqlite3lib.SQLITE_LOCKED:
		return fmt.Errorf("sqlite: append at seq %d: %w: %v", first, trail.ErrUnavailable, err)
	}
	return fmt.Errorf("sqlite: append at seq %d: %w", first, err)
}
