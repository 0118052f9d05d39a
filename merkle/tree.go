package merkle

import (
	"fmt"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// Tree computes the stored hashes of appended records without reading the
// store on the hot path. Appending leaf n needs only the roots of the
// complete subtrees left of it (the frontier), which are the hashes most
// recently stored at each level; Tree keeps those in memory and falls back
// to the store for anything else (such as the first appends after start).
//
// A Tree is used by one goroutine: the log's single writer.
type Tree struct {
	size     int64
	store    tlog.HashReader
	frontier [64]cached          // by level: the last hash stored at that level
	pending  map[int64]tlog.Hash // uncommitted hashes, by index
	pendingN int64
}

type cached struct {
	index int64 // -1: empty
	hash  tlog.Hash
}

// NewTree returns a tree of size records whose stored hashes r reads.
func NewTree(size int64, r tlog.HashReader) *Tree {
	t := &Tree{size: size, store: r, pending: make(map[int64]tlog.Hash)}
	for i := range t.frontier {
		t.frontier[i].index = -1
	}
	return t
}

// Size returns the number of committed records.
func (t *Tree) Size() int64 { return t.size }

// ReadHashes implements tlog.HashReader over pending, frontier and store.
func (t *Tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var miss []int64
	for i, x := range indexes {
		if h, ok := t.pending[x]; ok {
			out[i] = h
			continue
		}
		level, _ := tlog.SplitStoredHashIndex(x)
		if c := t.frontier[level]; c.index == x {
			out[i] = c.hash
			continue
		}
		miss = append(miss, x)
	}
	if len(miss) == 0 {
		return out, nil
	}
	got, err := t.store.ReadHashes(miss)
	if err != nil {
		return nil, err
	}
	if len(got) != len(miss) {
		return nil, fmt.Errorf("merkle: store returned %d hashes for %d indexes", len(got), len(miss))
	}
	j := 0
	for i, x := range indexes {
		if j < len(miss) && miss[j] == x {
			out[i] = got[j]
			j++
		}
	}
	return out, nil
}

// Append fills in the Hashes of entries, whose seqs must continue the tree
// (including earlier uncommitted appends) and whose Hashes[0] is already
// the leaf hash. The tree does not grow until Commit; Rollback forgets the
// uncommitted hashes.
func (t *Tree) Append(entries []*trail.Entry) error {
	n := t.size + t.pendingN
	for _, e := range entries {
		if e.Seq != n {
			return fmt.Errorf("merkle: append seq %d, want %d", e.Seq, n)
		}
		hs, err := tlog.StoredHashesForRecordHash(n, e.Hashes[0], t)
		if err != nil {
			return fmt.Errorf("merkle: stored hashes of seq %d: %w", n, err)
		}
		base := tlog.StoredHashIndex(0, n)
		for i, h := range hs {
			t.pending[base+int64(i)] = h
		}
		e.Hashes = hs
		n++
		t.pendingN++
	}
	return nil
}

// Commit makes the appended records part of the tree.
func (t *Tree) Commit() {
	for x, h := range t.pending {
		level, _ := tlog.SplitStoredHashIndex(x)
		if x > t.frontier[level].index {
			t.frontier[level] = cached{index: x, hash: h}
		}
	}
	clear(t.pending)
	t.size += t.pendingN
	t.pendingN = 0
}

// Rollback forgets everything appended since the last Commit.
func (t *Tree) Rollback() {
	clear(t.pending)
	t.pendingN = 0
}

// Root returns the root hash of the committed tree.
func (t *Tree) Root() (tlog.Hash, error) {
	if t.size == 0 {
		return tlog.Hash{}, nil
	}
	return tlog.TreeHash(t.size, t)
}
