package seglog

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/trail-audit/trail"
)

// List returns the entries that match f, in (time, seq) order. It merges
// the index's answer with the matching records of the unindexed tail, so
// that a record is listed from the moment its Append returned: List never
// lags the log. The tail is taken first, and the index is asked only for
// the records before its start: every one of them is committed by then,
// and a page of the index must not fill up with records the tail holds or
// that were appended after it was taken.
func (s *Store) List(ctx context.Context, f *trail.Filter) ([]*trail.Entry, error) {
	start, tl := s.tail.snapshot()
	var keys []listKey
	q, args, ok, err := s.listQuery(ctx, f, start)
	if err == nil && ok {
		keys, err = s.listKeys(ctx, q, args)
	}
	if err != nil {
		return nil, fmt.Errorf("seglog: list: %w", err)
	}
	var tail []*trail.Entry
	for _, te := range tl {
		if s.matches(f, te.e) {
			tail = append(tail, te.e)
		}
	}
	order := func(t1, s1, t2, s2 int64) int {
		c := cmp.Or(cmp.Compare(t1, t2), cmp.Compare(s1, s2))
		if f.Desc {
			return -c
		}
		return c
	}
	slices.SortFunc(tail, func(a, b *trail.Entry) int { return order(a.Time.UnixNano(), a.Seq, b.Time.UnixNano(), b.Seq) })

	// Merge the two ordered lists, reading a record from the log only
	// when it is taken, up to the limit and Filter.MaxBytes.
	var out []*trail.Entry
	var size int64
	segs := s.segments()
	for i, j := 0, 0; (f.Limit <= 0 || len(out) < f.Limit) && (i < len(keys) || j < len(tail)); {
		var e *trail.Entry
		if j == len(tail) || i < len(keys) && order(keys[i].time, keys[i].seq, tail[j].Time.UnixNano(), tail[j].Seq) < 0 {
			if e, err = s.checkedEntry(segs, keys[i].seq, keys[i].off, keys[i].idh); err != nil {
				return nil, fmt.Errorf("seglog: list: %w", err)
			}
			i++
		} else {
			c := *tail[j]
			e = &c
			j++
		}
		out = append(out, e)
		if size += int64(len(e.Bytes)); f.MaxBytes > 0 && size >= f.MaxBytes {
			break
		}
	}
	return out, nil
}

// A listKey is an index row that List may take.
type listKey struct{ seq, off, idh, time int64 }

// listKeys runs List's index query.
func (s *Store) listKeys(ctx context.Context, q string, args []any) ([]listKey, error) {
	rows, err := s.ix.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []listKey
	for rows.Next() {
		var k listKey
		if err := rows.Scan(&k.seq, &k.off, &k.idh, &k.time); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// matches reports whether e, of the store's log, passes f.
func (s *Store) matches(f *trail.Filter, e *trail.Entry) bool {
	tg := e.TargetOrZero()
	for _, p := range [...][2]string{
		{f.Tenant, e.Tenant}, {f.Actor, e.Actor.ID}, {f.ActorType, e.Actor.Type}, {f.Target, tg.ID},
		{f.TargetType, tg.Type}, {f.Source, e.Source.Service}, {f.Outcome, e.Outcome},
	} {
		if p[0] != "" && p[0] != p[1] {
			return false
		}
	}
	if f.ActionPrefix && !strings.HasPrefix(e.Action, f.Action) || !f.ActionPrefix && f.Action != "" && f.Action != e.Action {
		return false
	}
	t := e.Time.UnixNano()
	if !f.Since.IsZero() && t < f.Since.UnixNano() || !f.Until.IsZero() && t >= f.Until.UnixNano() {
		return false
	}
	if f.After != nil {
		at := trail.Cursor{Time: t, Log: s.log, Seq: e.Seq}
		if f.Desc {
			return at.Less(f.After)
		}
		return f.After.Less(&at)
	}
	return true
}

// listQuery builds List's query of the index. ok is false if the filter
// names a string the index has never seen, so no indexed record matches.
// Equality filters and the time range let SQLite walk one (field, time)
// index, whose entries end in seq, in the order of the keyset (time, seq).
func (s *Store) listQuery(ctx context.Context, f *trail.Filter, before int64) (q string, args []any, ok bool, err error) {
	// The unary + keeps SQLite from using the rowid for this bound, which
	// holds nearly every row, rather than an index that orders by time.
	where, args := []string{"+seq < ?"}, []any{before}
	for _, p := range [...]struct{ col, v string }{
		{"tenant", f.Tenant}, {"actor", f.Actor}, {"actor_type", f.ActorType}, {"target", f.Target},
		{"target_type", f.TargetType}, {"source", f.Source}, {"outcome", f.Outcome}, {"action", map[bool]string{false: f.Action}[f.ActionPrefix]},
	} {
		if p.v == "" {
			continue
		}
		var d int64
		err := s.ix.r.QueryRowContext(ctx, "SELECT id FROM dict WHERE s = ?", p.v).Scan(&d)
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil, false, nil
		} else if err != nil {
			return "", nil, false, err
		}
		where, args = append(where, p.col+" = ?"), append(args, d)
	}
	if f.ActionPrefix && f.Action != "" {
		where = append(where, "action IN (SELECT id FROM dict WHERE s >= ? AND s < ?)")
		args = append(args, f.Action, f.Action+"\xff")
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where, args = append(where, "time < ?"), append(args, f.Until.UnixNano())
	}
	if c := f.After; c != nil {
		w, a := s.afterCond(c, f.Desc)
		where, args = append(where, w), append(args, a...)
	}
	order := " ORDER BY time, seq"
	if f.Desc {
		order = " ORDER BY time DESC, seq DESC"
	}
	q = "SELECT seq, off, idh, time FROM records WHERE " + strings.Join(where, " AND ") + order
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit)
	}
	return q, args, true, nil
}

// afterCond is the condition of records strictly after the cursor c in
// (time, log, seq) order. Every record is of s.log, so a cursor of another
// log is before or after all records of its time.
func (s *Store) afterCond(c *trail.Cursor, desc bool) (string, []any) {
	gt, order := ">", strings.Compare(s.log, c.Log)
	if desc {
		gt, order = "<", -order
	}
	switch order {
	case 1:
		return "time " + gt + "= ?", []any{c.Time}
	case -1:
		return "time " + gt + " ?", []any{c.Time}
	}
	return "time " + gt + "= ? AND (time " + gt + " ? OR seq " + gt + " ?)", []any{c.Time, c.Time, c.Seq}
}
