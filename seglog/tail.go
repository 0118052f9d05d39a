package seglog

import (
	"sync"

	"github.com/trail-audit/trail"
)

// The tail holds the records that are durable but not yet indexed, in seq
// order from start, so that Get, Lookup and List see a record from the
// moment its Append returned. The indexer removes records only after
// their index rows are committed, so every seq below start is in the
// index.
type tail struct {
	mu      sync.RWMutex
	start   int64
	entries []*tailEntry
	ids     map[string]*tailEntry
}

type tailEntry struct {
	e   *trail.Entry
	seg *segment
	off int64
}

func (t *tail) add(entries []*trail.Entry, g *segment, offs []int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, e := range entries {
		te := &tailEntry{e: e, seg: g, off: offs[i]}
		t.entries = append(t.entries, te)
		t.ids[e.ID] = te
	}
}

// pending returns up to n of the tail's first records.
func (t *tail) pending(n int) []*tailEntry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.entries[:min(n, len(t.entries)):min(n, len(t.entries))]
}

// drop removes the first n records, which are now indexed.
func (t *tail) drop(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, te := range t.entries[:n] {
		delete(t.ids, te.e.ID)
	}
	// Not cleared: a snapshot may still hold them. The array is dropped
	// when append outgrows it.
	t.entries = t.entries[n:]
	t.start += int64(n)
	if len(t.entries) == 0 {
		t.entries = nil // let the array go
	}
}

// get returns the tail's record with the id, if it holds it.
func (t *tail) get(id string) *tailEntry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.ids[id]
}

// at returns the tail's record of seq, if it holds it.
func (t *tail) at(seq int64) *tailEntry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if i := seq - t.start; i >= 0 && i < int64(len(t.entries)) {
		return t.entries[i]
	}
	return nil
}

// snapshot returns the tail's start and records.
func (t *tail) snapshot() (int64, []*tailEntry) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.start, t.entries[:len(t.entries):len(t.entries)]
}

// len returns how many records the tail holds.
func (t *tail) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.entries)
}
