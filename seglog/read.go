package seglog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// errDisagrees says that the index points at a record the log does not
// hold there.
const errDisagrees = "the index disagrees with the log: delete %s and restart to rebuild it"

// Get returns the entry with the id, its Record parsed from its bytes.
func (s *Store) Get(ctx context.Context, id string) (*trail.Entry, error) {
	if te := s.tail.get(id); te != nil {
		e, err := trail.ParseEntry(te.e.Bytes, te.e.Digest, te.e.Hashes)
		if err != nil {
			return nil, fmt.Errorf("seglog: get %q: seq %d: %w", id, te.e.Seq, err)
		}
		return e, nil
	}
	m, err := s.lookup(ctx, []string{id}, nil, true)
	if err != nil {
		return nil, fmt.Errorf("seglog: get %q: %w", id, err)
	}
	if e := m[id]; e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("seglog: get %q: %w", id, trail.ErrNotFound)
}

// Lookup returns the stored entries with the ids. See trail.Store.
func (s *Store) Lookup(ctx context.Context, ids []string) (map[string]*trail.Entry, error) {
	m, err := s.lookup(ctx, ids, nil, true)
	if err != nil {
		return nil, fmt.Errorf("seglog: lookup: %w", err)
	}
	return m, nil
}

// maxParams bounds the parameters of an IN list.
const maxParams = 500

// lookup finds ids in the tail and then in the index: in that order, since
// the indexer drops records from the tail only after it has committed
// them. The index is asked only for ids the id filter may hold (Append
// adds ids to it before the tail). Each index hit is read from the log
// and its id checked. If hs is not nil, lookup sets hs[i] to ids[i]'s
// hash.
func (s *Store) lookup(ctx context.Context, ids []string, hs []int64, copyTail bool) (map[string]*trail.Entry, error) {
	m := make(map[string]*trail.Entry)
	want := make(map[int64][]string)
	for i, id := range ids {
		h := idHash(id)
		if hs != nil {
			hs[i] = h
		}
		if te := s.tail.get(id); te != nil {
			e := te.e
			if copyTail {
				c := *e
				e = &c
			}
			m[id] = e
			continue
		}
		if !s.mayBeStored(h) {
			continue
		}
		want[h] = append(want[h], id)
	}
	if len(want) == 0 {
		return m, nil
	}
	// The id index is ordered by idKey, then idHash; a row answers when
	// both are an asked id's, so that ids sharing a key, which anyone can
	// make, cost no reads. Every id of each hash is asked for its key.
	pairs := make(map[[2]int64]bool)
	for h, ids := range want {
		for _, id := range ids {
			pairs[[2]int64{idKey(id), h}] = true
		}
	}
	var args []any
	for p := range pairs {
		args = append(args, p[0], p[1])
	}
	for len(args) > 0 {
		n := min(len(args), 2*maxParams) // pairs of parameters
		q := "SELECT seq, off, idh FROM records WHERE (idk, idh) IN (VALUES (?, ?)" + strings.Repeat(", (?, ?)", n/2-1) + ")"
		if n == 2 {
			q = byIDKey // a prepared statement: Get's query
		}
		err := s.indexRows(ctx, q, args[:n], func(e *trail.Entry, idh int64) {
			for _, id := range want[idh] {
				if e.ID == id {
					m[id] = e
				}
			}
		})
		if err != nil {
			return nil, err
		}
		args = args[n:]
	}
	return m, nil
}

// indexRows runs an index query of (seq, off, idh) and calls fn with each
// row's entry, read from the log. A row whose frame holds another seq, or
// whose record's id has another hash, means the index disagrees with the
// log: that is an error, never a wrong answer.
func (s *Store) indexRows(ctx context.Context, query string, args []any, fn func(e *trail.Entry, idh int64)) error {
	var rows *sql.Rows
	var err error
	if st := s.ix.prepared[query]; st != nil {
		// A prepared query finds one key in the index, in microseconds:
		// a context that can end would cost more than the query, since
		// the driver and database/sql each start a goroutine to watch it.
		rows, err = st.QueryContext(context.WithoutCancel(ctx), args...)
	} else {
		rows, err = s.ix.r.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	segs := s.segments()
	for rows.Next() {
		var seq, off, idh int64
		if err := rows.Scan(&seq, &off, &idh); err != nil {
			return err
		}
		e, err := s.checkedEntry(segs, seq, off, idIs(idh))
		if err != nil {
			return err
		}
		fn(e, idh)
	}
	return rows.Err()
}

// checkedEntry reads the record of an index row and checks that it is the
// row's: the same seq, and what check asks of it.
func (s *Store) checkedEntry(segs []*segment, seq, off int64, check func(*trail.Entry) error) (*trail.Entry, error) {
	e, err := s.readEntry(segs, seq, off)
	if err == nil {
		if cerr := check(e); cerr != nil {
			err = misplaced{cerr}
		}
	}
	if errors.As(err, new(misplaced)) {
		return nil, fmt.Errorf("%w: "+errDisagrees, err, s.indexDir())
	}
	return e, err // damage in the log itself names itself
}

// idIs checks that a record read through the id index has an id of the
// row's hash.
func idIs(idh int64) func(*trail.Entry) error {
	return func(e *trail.Entry) error {
		if idHash(e.ID) != idh {
			return fmt.Errorf("the record of seq %d has id %q, which the index does not", e.Seq, e.ID)
		}
		return nil
	}
}

func (s *Store) indexDir() string { return s.cfg.Dir + "/index" }

// misplaced says that the index points at a record the log holds
// elsewhere, or not at all.
type misplaced struct{ error }

func (m misplaced) Unwrap() error { return m.error }

// readEntry reads the record of seq at off of its segment.
func (s *Store) readEntry(segs []*segment, seq, off int64) (*trail.Entry, error) {
	if off < 0 { // see catchUp
		return nil, fmt.Errorf("the record of seq %d is damaged in the log (the index was built without it); trail verify names it; restore its segment from a backup", seq)
	}
	g := segmentFor(segs, seq)
	if g < 0 || seq >= s.size.Load() {
		return nil, misplaced{fmt.Errorf("seq %d is not in the log", seq)}
	}
	fr, _, err := segs[g].readFrame(off)
	if err != nil && !errors.Is(err, errChecksum) && !errors.As(err, new(*fs.PathError)) {
		return nil, misplaced{err} // an offset that is not a frame's
	}
	if err != nil {
		return nil, err // damage in the log, or a file that cannot be read
	}
	if fr.seal || fr.seq != seq {
		return nil, misplaced{otherRecord{fmt.Errorf("segment %s, offset %d: want the record of seq %d, found %s", segs[g].name(), off, seq, describe(fr))}}
	}
	return fr.entry()
}

// otherRecord says that the index points at a whole frame of another
// record: not damage in the log, but an index that disagrees with it.
type otherRecord struct{ error }

func (o otherRecord) Unwrap() error { return o.error }

// Scan calls fn for the entries of log with from <= seq < to, in seq
// order, reading the segments in sequence. A record whose frame fails its
// checksum is skipped, as trail.Reader allows for a missing seq, so that
// verification names it; damage that hides where the next frame begins is
// an error naming the segment and offset.
func (s *Store) Scan(ctx context.Context, log string, from, to int64, fn func(*trail.Entry) error) error {
	return s.scanFrames(ctx, log, from, to, func(fr *frame) error {
		e, err := fr.entry()
		if err != nil {
			return fmt.Errorf("seglog: scan %s [%d, %d): %w", log, from, to, err)
		}
		return fn(e)
	})
}

// scanFrames calls fn with the frames of Scan's records.
func (s *Store) scanFrames(ctx context.Context, log string, from, to int64, fn func(*frame) error) error {
	to = min(to, s.size.Load())
	if log != s.log || from >= to {
		return nil
	}
	from = max(from, 0)
	c, err := s.cursorAt(from)
	if err != nil {
		return fmt.Errorf("seglog: scan %s [%d, %d): %w", log, from, to, err)
	}
	c.skipDamaged = true
	for c.next < to {
		if c.next%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		fr, _, _, err := c.read()
		if err != nil && c.next >= to {
			return nil // it skipped damaged records to the end of the range
		}
		if err != nil {
			return fmt.Errorf("seglog: scan %s [%d, %d): %w", log, from, to, err)
		}
		if fr.seq >= to {
			return nil
		}
		if err := fn(fr); err != nil {
			return err
		}
	}
	return nil
}

// ReadHashes returns the stored hashes of log at the tlog indexes, from
// the frames of the records that hold them.
func (s *Store) ReadHashes(ctx context.Context, log string, indexes []int64) ([]tlog.Hash, error) {
	hs, err := trail.ReadHashes(indexes, func(seqs []int64) (map[int64][]tlog.Hash, error) {
		m := make(map[int64][]tlog.Hash, len(seqs))
		if log != s.log {
			return m, nil
		}
		var rest []any
		for _, seq := range seqs {
			if te := s.tail.at(seq); te != nil {
				m[seq] = te.e.Hashes
			} else if _, ok := m[seq]; !ok {
				rest = append(rest, seq)
			}
		}
		for len(rest) > 0 {
			n := min(len(rest), maxParams)
			err := s.indexRows(ctx, "SELECT seq, off, idh FROM records WHERE seq IN (?"+strings.Repeat(", ?", n-1)+")", rest[:n], func(e *trail.Entry, _ int64) {
				m[e.Seq] = e.Hashes
			})
			if err != nil {
				return nil, err
			}
			rest = rest[n:]
		}
		return m, nil
	})
	if err != nil {
		return nil, fmt.Errorf("seglog: read hashes of %s: %w", log, err)
	}
	return hs, nil
}
