package seglog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/trail-audit/trail"
)

// Append writes entries' frames to the active segment in one write and
// syncs it once; it returns after the sync. See trail.Store.
func (s *Store) Append(ctx context.Context, entries []*trail.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("seglog: append: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("seglog: append: %w", errClosed)
	}
	if s.broken != nil {
		return fmt.Errorf("seglog: append: %w: %v", trail.ErrUnavailable, s.broken)
	}
	if err := trail.CheckAppend(s.log, s.size.Load(), entries); err != nil {
		return fmt.Errorf("seglog: %w", err)
	}
	if err := s.backpressure(ctx); err != nil {
		return err
	}
	hs, err := s.duplicates(ctx, entries)
	if err != nil {
		return err
	}
	first := entries[0].Seq
	if err := s.alone(first); err != nil {
		return err
	}
	b := s.buf[:0]
	offs := make([]int64, len(entries))
	for i, e := range entries {
		offs[i] = s.wsize + int64(len(b))
		b = appendFrame(b, e)
	}
	s.buf = b
	if err := s.write(b); err != nil {
		return fmt.Errorf("seglog: append at seq %d: %w: %v", first, trail.ErrUnavailable, err)
	}
	if cap(s.buf) > 8<<20 {
		s.buf = nil // a rare huge batch does not pin its buffer
	}
	g := s.segs[len(s.segs)-1]
	s.addIDs(hs) // before the tail, which the indexer empties
	s.tail.add(entries, g, offs)
	s.size.Store(first + int64(len(entries)))
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if s.wsize >= s.cfg.SegmentBytes {
		if err := s.roll(); err != nil {
			// The batch is durable; the next append will fail.
			s.broken = fmt.Errorf("seal segment %s: %w", g.path, err)
		}
	}
	return nil
}

// maxTail is the most records the tail holds before Append waits for the
// indexer: a bound on memory (about 1 KiB a record) when ingest outruns
// indexing for long.
const maxTail = 200000

// backpressure waits while the tail is full, so that the indexer catches
// up; the wait shows as latency, and the ingest queue's 503s push back on
// producers.
func (s *Store) backpressure(ctx context.Context) error {
	for s.tail.len() >= maxTail {
		if err := s.IndexErr(); err != nil {
			return fmt.Errorf("seglog: append: %d records wait for the indexer, which fails: %w: %v", s.tail.len(), trail.ErrUnavailable, err)
		}
		select {
		case s.flush <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("seglog: append: waiting for the indexer: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// alone checks that no one else has written to the active segment since
// this store last did: the directory lock of trail serve keeps a second
// server out, and this check, one fstat per append, keeps a process that
// ignored the lock from having its records overwritten by seq.
func (s *Store) alone(first int64) error {
	fi, err := s.w.Stat()
	if err != nil {
		return fmt.Errorf("seglog: append at seq %d: %w: %v", first, trail.ErrUnavailable, err)
	}
	if fi.Size() != s.wsize {
		return fmt.Errorf("seglog: append at seq %d: segment %s is %d bytes, but this store wrote %d: another process wrote to the log: %w",
			first, fi.Name(), fi.Size(), s.wsize, trail.ErrFenced)
	}
	return nil
}

// duplicates refuses a batch that repeats an id or holds a stored one; it
// returns the hashes of the ids.
func (s *Store) duplicates(ctx context.Context, entries []*trail.Entry) ([]int64, error) {
	first := entries[0].Seq
	ids := make([]string, len(entries))
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		if seen[e.ID] {
			return nil, fmt.Errorf("seglog: append at seq %d: id %q appears twice in the batch; nothing was stored: %w", first, e.ID, trail.ErrDuplicateID)
		}
		seen[e.ID] = true
		ids[i] = e.ID
	}
	hs := make([]int64, len(ids))
	stored, err := s.lookup(context.WithoutCancel(ctx), ids, hs, false)
	if err != nil {
		return nil, fmt.Errorf("seglog: append at seq %d: looking up the ids: %w: %v", first, trail.ErrUnavailable, err)
	}
	for _, e := range entries {
		if p := stored[e.ID]; p != nil {
			return nil, fmt.Errorf("seglog: append at seq %d: id %q is already stored (log %s, seq %d); nothing was stored: %w", first, e.ID, p.Log, p.Seq, trail.ErrDuplicateID)
		}
	}
	return hs, nil
}

// write appends b to the active segment and syncs it. If either fails, it
// cuts the segment back to its valid length, so that a later append does
// not follow a partial frame; if that fails too, the store stays broken
// until it is reopened, whose recovery truncates the tail.
func (s *Store) write(b []byte) error {
	_, err := s.w.Write(b)
	if err == nil {
		err = syncFile(s.w)
	}
	if err != nil {
		if terr := s.w.Truncate(s.wsize); terr != nil {
			s.broken = fmt.Errorf("a failed write (%v) could not be undone: %v", err, terr)
		}
		return err
	}
	s.wsize += int64(len(b))
	return nil
}

// roll seals the active segment and begins the next. The seal is synced
// before the next segment exists, so that at open every segment but the
// last is sealed.
func (s *Store) roll() error {
	next := s.size.Load()
	if err := s.write(appendSeal(nil, next)); err != nil {
		return err
	}
	path := filepath.Join(s.cfg.Dir, "log", segName(next))
	w, err := createFile(path)
	if err != nil {
		return err
	}
	if err := s.w.Close(); err != nil {
		w.Close()
		return err
	}
	s.w, s.wsize = w, 0
	s.segMu.Lock()
	s.segs = append(s.segs[:len(s.segs):len(s.segs)], &segment{first: next, path: path})
	s.segMu.Unlock()
	select {
	case s.sealed <- struct{}{}:
	default:
	}
	return nil
}

// syncFile makes f's data durable.
func syncFile(f *os.File) error { return fdatasync(f) }
