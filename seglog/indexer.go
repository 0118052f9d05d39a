package seglog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/trail-audit/trail"
)

// bulkRebuild is how many unindexed records make catchUp rebuild the
// secondary indexes after loading the rows rather than as it goes.
var bulkRebuild int64 = 50000

// indexBatch is the most records the indexer writes in one transaction.
const indexBatch = 20000

// catchUp indexes the records past the watermark, reading them from the
// segments. If the index disagrees with the log where the watermark
// says it ends, it is dropped and rebuilt from seq 0.
func (s *Store) catchUp() (err error) {
	size := s.size.Load()
	if s.ix.watermark >= size {
		return nil
	}
	c, err := s.cursorAt(s.ix.watermark)
	if err != nil {
		if rerr := s.rebuildIndex(err); rerr != nil {
			return rerr
		}
		if c, err = s.cursorAt(0); err != nil {
			return err
		}
	}
	ctx := context.Background()
	if bulk := size-s.ix.watermark >= bulkRebuild; bulk {
		// Until the indexes are back, reads that need them are slow, not
		// wrong; a crash meanwhile recreates them at the next open.
		if err := s.ix.dropIndexes(ctx); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		defer func() {
			if ierr := s.ix.createIndexes(ctx); ierr != nil && err == nil {
				err = fmt.Errorf("index: %w", ierr)
			}
		}()
	}
	if err := s.indexFrom(ctx, c, size); err != nil {
		return err
	}
	s.indexed.Store(s.ix.watermark)
	s.tail.start = s.ix.watermark
	return nil
}

// indexFrom indexes the records from the watermark to size, read with c,
// in batches of indexBatch. A damaged record (its frame fails its
// checksum, or its chunk does) is indexed as a row of no id at offset -1,
// which reads answer with the damage: the log still opens, and trail
// verify names the seq, as it did before the index was rebuilt.
func (s *Store) indexFrom(ctx context.Context, c *cursor, size int64) error {
	c.skipDamaged = true
	var entries []*trail.Entry
	var offs []int64
	flush := func() error {
		if len(entries) == 0 {
			return nil
		}
		err := s.ix.insert(ctx, entries, offs)
		entries, offs = entries[:0], offs[:0]
		return err
	}
	add := func(e *trail.Entry, off int64) error {
		entries, offs = append(entries, e), append(offs, off)
		if len(entries) < indexBatch {
			return nil
		}
		return flush()
	}
	last := time.Unix(0, 0)
	for seq := s.ix.watermark; seq < size; {
		fr, _, off, err := c.read()
		if err != nil && c.next >= size {
			fr = &frame{seq: size} // damaged records to the end
		} else if err != nil {
			return err
		}
		var e *trail.Entry
		for ; seq < min(fr.seq, size); seq++ {
			if err := add(s.damagedEntry(seq, last), -1); err != nil {
				return fmt.Errorf("index: %w", err)
			}
		}
		if seq == size {
			break
		}
		if e, err = fr.entry(); err != nil {
			e, off = s.damagedEntry(seq, last), -1
		}
		last = e.Time
		if err := add(e, off); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		seq++
	}
	if err := flush(); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

// damagedEntry stands for the record of seq, which the log holds damaged,
// in the index: no id, no fields, and the time of the record before it.
func (s *Store) damagedEntry(seq int64, t time.Time) *trail.Entry {
	return &trail.Entry{Record: trail.Record{Log: s.log, Seq: seq, Body: trail.Body{Time: t}}}
}

// refillBlock rebuilds the block being filled, which is not stored, from
// the indexed records past the last full block, each read at the offset
// the id index gives it. A record that cannot be read there (damage in
// the log, or an offset that is not a frame's) gets a row that no field
// filter matches, at that offset, so that a read that reaches it names
// the problem, as Get does, and Open still succeeds for trail verify to
// name the seq; damage does not hide the records after it, as it would
// from a cursor that loses where frames begin. A whole frame of another
// record means that the index disagrees with the log: Open rebuilds it.
func (s *Store) refillBlock() error {
	from, to := s.ix.cur.first, s.ix.watermark
	if from == to {
		return nil
	}
	offs, err := s.ix.offsets(from, to)
	if err != nil {
		return misplaced{err}
	}
	ctx := context.Background()
	segs := s.segments()
	for i, off := range offs {
		e, err := s.readEntry(segs, from+int64(i), off)
		switch {
		case errors.As(err, new(otherRecord)):
			return err // misplaced: Open rebuilds the index
		case errors.As(err, new(*fs.PathError)):
			return err // the file could not be read: not damage, and not for good
		case err != nil:
			s.ix.cur.add(blockRow{time: s.ix.cur.tmax, off: off}) // damage, which reads name
			continue
		}
		r, err := s.ix.row(ctx, e, off)
		if err != nil {
			return err
		}
		s.ix.cur.add(r)
	}
	s.ix.blocks.publish([]*blockMeta{s.ix.cur.partial()})
	return nil
}

// rebuildIndex drops the index, which disagrees with the log (why), and
// opens an empty one.
func (s *Store) rebuildIndex(why error) error {
	dir := filepath.Dir(s.ix.path)
	if err := s.ix.close(); err != nil {
		return err
	}
	s.ix = nil
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("the index disagrees with the log (%v); removing it: %w", why, err)
	}
	var err error
	if s.ix, err = openIndex(dir, s.log, s.size.Load()); err != nil {
		return fmt.Errorf("the index disagrees with the log (%v); rebuilding it: %w", why, err)
	}
	s.indexed.Store(0)
	return nil
}

// cursorAt returns a cursor at seq, found through the tail, the index or,
// failing both, a read of its segment from the start.
func (s *Store) cursorAt(seq int64) (*cursor, error) {
	segs := s.segments()
	if te := s.tail.at(seq); te != nil {
		return s.newCursor(seq, segmentFor(segs, seq), te.off)
	}
	if seq > 0 && seq-1 < s.indexed.Load() {
		// The frame after seq-1's, which the cursor checks is seq's.
		off, err := s.ix.offset(seq - 1)
		if err == nil {
			g := segmentFor(segs, seq-1)
			c, err := s.newCursor(seq-1, g, off)
			if err != nil {
				return nil, err
			}
			if _, _, _, err := c.read(); err != nil {
				return nil, fmt.Errorf("the index disagrees with the log: %w", err)
			}
			return c, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
	}
	g := segmentFor(segs, seq)
	c, err := s.newCursor(segs[g].first, g, 0)
	if err != nil {
		return nil, err
	}
	for c.next < seq {
		if _, _, _, err := c.read(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// indexLoop is the indexer: woken by appends, it waits IndexInterval (or
// a WaitIndexed) to gather a batch, indexes the tail and drops what it indexed. On stop it
// indexes what is left, so that a clean restart has nothing to catch up.
func (s *Store) indexLoop() {
	defer close(s.stopped)
	var retry <-chan time.Time
	for {
		select {
		case <-s.stop:
			if s.indexTail() == nil {
				s.saveIDs(true)
			}
			return
		case <-s.wake:
		case <-retry:
		}
		select {
		case <-s.stop:
			if s.indexTail() == nil {
				s.saveIDs(true)
			}
			return
		case <-s.flush:
		case <-time.After(s.cfg.IndexInterval):
		}
		retry = nil
		if err := s.indexTail(); err != nil {
			s.setIndexErr(err)
			retry = time.After(time.Second)
		} else {
			s.setIndexErr(nil)
			s.saveIDs(false)
		}
	}
}

// indexTail indexes every record of the tail.
func (s *Store) indexTail() error {
	ctx := context.Background()
	for {
		batch := s.tail.pending(indexBatch)
		if len(batch) == 0 {
			return nil
		}
		entries := make([]*trail.Entry, len(batch))
		offs := make([]int64, len(batch))
		for i, te := range batch {
			entries[i], offs[i] = te.e, te.off
		}
		if err := s.ix.insert(ctx, entries, offs); err != nil {
			return err
		}
		s.indexed.Store(s.ix.watermark)
		s.tail.drop(len(batch))
	}
}

func (s *Store) setIndexErr(err error) {
	s.ixMu.Lock()
	s.ixErr = err
	s.ixMu.Unlock()
}

// WaitIndexed waits until every record appended before the call is in the
// index, or ctx ends. List does not need it (it reads the unindexed tail
// too); it is for tests and for tools that read the index file.
func (s *Store) WaitIndexed(ctx context.Context) error {
	target := s.size.Load()
	for s.indexed.Load() < target {
		select {
		case s.wake <- struct{}{}:
		default:
		}
		select {
		case s.flush <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// IndexErr returns the indexer's last error, or nil if its last batch
// succeeded.
func (s *Store) IndexErr() error {
	s.ixMu.Lock()
	defer s.ixMu.Unlock()
	return s.ixErr
}
