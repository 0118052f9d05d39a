package seglog

import (
	"context"
	"path/filepath"
)

// filterFile is the id filter's file in the index directory: derived, like
// the index, and removed with it.
const filterFile = "ids.filter"

// filterSaveEvery is how many newly indexed records make the indexer write
// the filter file again, at the least (or a 32nd of the log, so that the
// writes stay a small share of the indexer's work: 25 MB every 312k
// records at 10M, about 4% of its time). After a crash, open reads the id hashes of the records
// past the file's mark from the index, a range of rowids; a clean Close
// leaves none.
const filterSaveEvery = 1 << 16

// rebuildChunk is how many index rows a filter rebuild reads per query,
// between which it checks for Close.
const rebuildChunk = 100000

func (s *Store) filterPath() string { return filepath.Join(filepath.Dir(s.ix.path), filterFile) }

// loadIDs sets up the id filter, after catchUp, when the index holds every
// record. A filter file whose mark the log holds is taken, and the ids
// past its mark are added from the index. Without one (a first open, a
// lost index, a crash that damaged the file), the filter is rebuilt from
// the index in the background; until then lookups ask the index for
// every id, which is exact, only slower.
func (s *Store) loadIDs() {
	size := s.size.Load()
	f, mark, err := readIDFilter(s.filterPath())
	if err == nil && mark <= size {
		if err := s.ix.idHashes(context.Background(), mark, size, f.add); err == nil {
			s.ids, s.idsMark = f, mark
			s.idsReady.Store(true)
			return
		}
	}
	s.ids, s.idsMark = newIDFilter(max(minFilterCap, 2*size)), -1
	if size == 0 {
		s.idsReady.Store(true)
		return
	}
	s.bg.Add(1)
	go s.rebuildIDs(size)
}

// rebuildIDs adds the ids of the records below size, which are indexed,
// from the index; Append adds those from size on. A failure leaves the
// filter unused, and lookups on the index, until the next open.
func (s *Store) rebuildIDs(size int64) {
	defer s.bg.Done()
	ctx := context.Background()
	for from := int64(0); from < size; from += rebuildChunk {
		select {
		case <-s.stop:
			return
		default:
		}
		if err := s.ix.idHashes(ctx, from, min(size, from+rebuildChunk), s.ids.add); err != nil {
			return
		}
	}
	s.idsReady.Store(true)
}

// saveIDs writes the filter file, covering the indexed records, if enough
// were indexed since it was last written, or at Close (final). It runs in
// the indexer, which owns idsMark. A filter being rebuilt is not written:
// it lacks ids. A failure to write is left for the next open to find, as a
// file missing or damaged, and repair.
func (s *Store) saveIDs(final bool) {
	w := s.ix.watermark
	if !s.idsReady.Load() || w == s.idsMark {
		return
	}
	if !final && s.idsMark >= 0 && w-s.idsMark < max(filterSaveEvery, w/32) {
		return
	}
	if writeIDFilter(s.filterPath(), s.ids, w) == nil {
		s.idsMark = w
	}
}

// mayBeStored reports whether the index may hold an id of hash h: false
// only when the filter is ready and says so.
func (s *Store) mayBeStored(h int64) bool {
	return !s.idsReady.Load() || s.ids.mayHave(h)
}

// addIDs adds entries' ids to the filter.
func (s *Store) addIDs(hs []int64) { s.ids.add(hs...) }

// idHashes calls add with the id hashes of the records in [from, to).
func (ix *index) idHashes(ctx context.Context, from, to int64, add func(...int64)) error {
	if from >= to {
		return nil
	}
	rows, err := ix.r.QueryContext(ctx, "SELECT idh FROM records WHERE seq >= ? AND seq < ?", from, to)
	if err != nil {
		return err
	}
	defer rows.Close()
	hs := make([]int64, 0, 4096)
	for rows.Next() {
		var h int64
		if err := rows.Scan(&h); err != nil {
			return err
		}
		if hs = append(hs, h); len(hs) == cap(hs) {
			add(hs...)
			hs = hs[:0]
		}
	}
	add(hs...)
	return rows.Err()
}
