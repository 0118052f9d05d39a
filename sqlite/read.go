package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

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
	hs, err := trail.DecodeHashes(hashes)
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
	var size int64
	err := s.query(ctx, s.rdb, q, args, func(e *trail.Entry) error {
		out = append(out, e)
		if size += int64(len(e.Bytes)); f.MaxBytes > 0 && size >= f.MaxBytes {
			return errListFull
		}
		return nil
	})
	if err != nil && err != errListFull {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	return out, nil
}

// errListFull ends a List's rows at Filter.MaxBytes.
var errListFull = errors.New("sqlite: list reached MaxBytes")

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
		if e.Hashes, err = trail.DecodeHashes(hashes); err != nil {
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
		if m[seq], err = trail.DecodeHashes(b); err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
	}
	return rows.Err()
}
