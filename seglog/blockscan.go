package seglog

import (
	"cmp"
	"context"
	"slices"

	"github.com/trail-audit/trail"
)

// indexKeys returns, in List order, up to need (<= 0: all) keys of the
// indexed records before seq before that pass q and f's time range and
// cursor, and come after from (if not nil). It reads the blocks whose
// summary may match in the order of their time ranges, and stops once no
// block left can hold a record that sorts before the last key it needs.
func (s *Store) indexKeys(ctx context.Context, f *trail.Filter, q *blockQuery, before int64, from *listKey, need int) ([]listKey, error) {
	var cands []*blockMeta
	for _, m := range s.ix.blocks.snapshot() {
		if m.first >= before {
			break
		}
		if s.blockMayMatch(f, q, m, from) {
			cands = append(cands, m)
		}
	}
	if f.Desc {
		slices.SortFunc(cands, func(a, b *blockMeta) int { return cmp.Or(cmp.Compare(b.tmax, a.tmax), cmp.Compare(b.first, a.first)) })
	} else {
		slices.SortFunc(cands, func(a, b *blockMeta) int { return cmp.Or(cmp.Compare(a.tmin, b.tmin), cmp.Compare(a.first, b.first)) })
	}
	order := func(a, b listKey) int { return listOrder(f.Desc, a.time, a.seq, b.time, b.seq) }
	var found, blk []listKey
	for k, m := range cands {
		full := need > 0 && len(found) >= need
		if full {
			last := found[need-1].time
			if !f.Desc && m.tmin > last || f.Desc && m.tmax < last {
				break // every block left sorts after the page
			}
		}
		if k%64 == 63 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		rows, err := s.ix.rows(ctx, m)
		if err != nil {
			return nil, err
		}
		blk = blk[:0]
		for i := range rows {
			r := &rows[i]
			seq := m.first + int64(i)
			if seq >= before {
				break
			}
			key := listKey{seq: seq, off: r.off, time: r.time}
			if !q.matches(r) || !s.inRange(f, r.time, seq) || from != nil && order(*from, key) >= 0 ||
				full && order(key, found[need-1]) >= 0 {
				continue
			}
			blk = append(blk, key)
		}
		if len(blk) > 0 {
			// A block's rows are nearly in time order already, which the
			// sort is quick on; then the two sorted lists are merged.
			slices.SortFunc(blk, order)
			found = mergeKeys(found, blk, need, order)
		}
	}
	return found, nil
}

// mergeKeys merges the sorted lists a and b, keeping the first need (all
// if need <= 0).
func mergeKeys(a, b []listKey, need int, order func(x, y listKey) int) []listKey {
	n := len(a) + len(b)
	if need > 0 {
		n = min(n, need)
	}
	out := make([]listKey, 0, n)
	i, j := 0, 0
	for len(out) < n {
		if j == len(b) || i < len(a) && order(a[i], b[j]) <= 0 {
			out, i = append(out, a[i]), i+1
		} else {
			out, j = append(out, b[j]), j+1
		}
	}
	return out
}

// blockMayMatch reports whether the block m may hold a record that passes
// q and f's time range and cursor, and comes after from.
func (s *Store) blockMayMatch(f *trail.Filter, q *blockQuery, m *blockMeta, from *listKey) bool {
	if !f.Since.IsZero() && m.tmax < f.Since.UnixNano() || !f.Until.IsZero() && m.tmin >= f.Until.UnixNano() {
		return false
	}
	for _, t := range []int64{cursorTime(f.After), keyTime(from)} {
		if t == noTime {
			continue
		}
		if !f.Desc && m.tmax < t || f.Desc && m.tmin > t {
			return false
		}
	}
	for i, vs := range q.want {
		if vs != nil && !m.mayHold(i, vs) {
			return false
		}
	}
	return true
}

// noTime stands for no cursor.
const noTime = -1 << 63

func cursorTime(c *trail.Cursor) int64 {
	if c == nil {
		return noTime
	}
	return c.Time
}

func keyTime(k *listKey) int64 {
	if k == nil {
		return noTime
	}
	return k.time
}
