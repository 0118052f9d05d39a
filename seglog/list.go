package seglog

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

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
	q, ok, err := s.blockQuery(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("seglog: list: %w", err)
	}
	src := &keySource{s: s, f: f, q: q, before: start, done: !ok}
	var tail []*trail.Entry
	for _, te := range tl {
		if s.matches(f, te.e) {
			tail = append(tail, te.e)
		}
	}
	slices.SortFunc(tail, func(a, b *trail.Entry) int {
		return listOrder(f.Desc, a.Time.UnixNano(), a.Seq, b.Time.UnixNano(), b.Seq)
	})

	// Merge the two ordered lists, reading a record from the log only
	// when it is taken, up to the limit and Filter.MaxBytes.
	var out []*trail.Entry
	var size int64
	segs := s.segments()
	for j := 0; f.Limit <= 0 || len(out) < f.Limit; {
		k, have, err := src.peek(ctx, f.Limit-len(out))
		if err != nil {
			return nil, fmt.Errorf("seglog: list: %w", err)
		}
		if !have && j == len(tail) {
			break
		}
		var e *trail.Entry
		if have && (j == len(tail) || listOrder(f.Desc, k.time, k.seq, tail[j].Time.UnixNano(), tail[j].Seq) < 0) {
			src.pop()
			if e, err = s.checkedEntry(segs, k.seq, k.off, timeIs(k.time)); err != nil {
				return nil, fmt.Errorf("seglog: list: %w", err)
			}
			if !s.matches(f, e) {
				continue // a hashed field that collided
			}
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

// listOrder compares two records by (time, seq), reversed if desc.
func listOrder(desc bool, t1, s1, t2, s2 int64) int {
	c := cmp.Or(cmp.Compare(t1, t2), cmp.Compare(s1, s2))
	if desc {
		return -c
	}
	return c
}

// timeIs checks that a record listed from the blocks has the time its
// block says.
func timeIs(t int64) func(*trail.Entry) error {
	return func(e *trail.Entry) error {
		if e.Time.UnixNano() != t {
			return fmt.Errorf("the record of seq %d has another time than the index says", e.Seq)
		}
		return nil
	}
}

// matches reports whether e, of the store's log, passes f: its fields
// and time (trail.Filter.Matches, which the live tail shares) and its
// cursor.
func (s *Store) matches(f *trail.Filter, e *trail.Entry) bool {
	return f.Matches(&e.Record) && s.afterCursor(f, e.Time.UnixNano(), e.Seq)
}

// inRange reports whether a record of time t and seq passes f's time
// range and cursor.
func (s *Store) inRange(f *trail.Filter, t, seq int64) bool {
	if !f.Since.IsZero() && t < f.Since.UnixNano() || !f.Until.IsZero() && t >= f.Until.UnixNano() {
		return false
	}
	return s.afterCursor(f, t, seq)
}

// afterCursor reports whether a record of time t and seq comes after f's
// cursor, if it has one, in f's order.
func (s *Store) afterCursor(f *trail.Filter, t, seq int64) bool {
	if f.After == nil {
		return true
	}
	at := trail.Cursor{Time: t, Log: s.log, Seq: seq}
	if f.Desc {
		return at.Less(f.After)
	}
	return f.After.Less(&at)
}

// A listKey is a record that the blocks say List may take.
type listKey struct{ seq, off, time int64 }

// keySource hands List the index's keys in order, asking the blocks for
// more when it runs out.
type keySource struct {
	s      *Store
	f      *trail.Filter
	q      blockQuery
	before int64
	keys   []listKey
	last   *listKey
	done   bool
}

// keySlack is how many keys past those still needed a refill asks for,
// so that a key List drops (a collided hash) rarely costs another scan.
const keySlack = 16

// peek returns the next key, if any; need is how many records List still
// wants (<= 0 for all).
func (ks *keySource) peek(ctx context.Context, need int) (listKey, bool, error) {
	if len(ks.keys) == 0 && !ks.done {
		if ks.f.Limit > 0 {
			need += keySlack
		} else {
			need = 0
		}
		keys, err := ks.s.indexKeys(ctx, ks.f, &ks.q, ks.before, ks.last, need)
		if err != nil {
			return listKey{}, false, err
		}
		ks.keys, ks.done = keys, need <= 0 || len(keys) < need
	}
	if len(ks.keys) == 0 {
		return listKey{}, false, nil
	}
	return ks.keys[0], true, nil
}

func (ks *keySource) pop() {
	k := ks.keys[0]
	ks.last, ks.keys = &k, ks.keys[1:]
}

// blockQuery is a filter's indexed fields as column values: want[i] nil
// takes any value.
type blockQuery struct {
	want [nFields][]uint64
}

// matches reports whether a row has a wanted value in every field.
func (q *blockQuery) matches(r *blockRow) bool {
	for i, vs := range q.want {
		if vs != nil && !slices.Contains(vs, r.f[i]) {
			return false
		}
	}
	return true
}

// maxPrefixActions bounds the actions an action prefix may stand for.
const maxPrefixActions = 1024

// blockQuery resolves f's fields. ok is false if f names a dictionary
// string the index has never seen, so that no indexed record matches.
func (s *Store) blockQuery(ctx context.Context, f *trail.Filter) (q blockQuery, ok bool, err error) {
	action := f.Action
	if f.ActionPrefix {
		action = ""
	}
	for i, v := range [nFields]string{f.Tenant, f.Actor, f.ActorType, action, f.Target, f.TargetType, f.Source, f.Outcome} {
		if v == "" {
			continue
		}
		if hashed[i] {
			q.want[i] = []uint64{strHash(v)}
			continue
		}
		var d int64
		err := s.ix.prepared[dictID].QueryRowContext(ctx, v).Scan(&d)
		if errors.Is(err, sql.ErrNoRows) {
			return q, false, nil
		} else if err != nil {
			return q, false, err
		}
		q.want[i] = []uint64{uint64(d)}
	}
	if f.ActionPrefix && f.Action != "" {
		rows, err := s.ix.prepared[dictPrefix].QueryContext(ctx, f.Action, f.Action+"\xff", maxPrefixActions+1)
		if err != nil {
			return q, false, err
		}
		defer rows.Close()
		ids := []uint64{}
		for rows.Next() {
			var d int64
			if err := rows.Scan(&d); err != nil {
				return q, false, err
			}
			ids = append(ids, uint64(d))
		}
		if err := rows.Err(); err != nil {
			return q, false, err
		}
		if len(ids) == 0 {
			return q, false, nil
		}
		if len(ids) <= maxPrefixActions {
			q.want[fAction] = ids
		} // else the prefix is checked on the records alone
	}
	return q, true, nil
}
