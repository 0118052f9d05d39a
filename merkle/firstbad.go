package merkle

import (
	"fmt"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// FirstBad finds the first record that differs from the log the signed
// checkpoint cp describes, given prove, which fetches a consistency proof
// from size m to cp.Size, and leaves, which re-reads the records with
// from <= seq < to and returns their leaf hashes.
//
// A proof built from untampered stored hashes ties each prefix of the
// rebuilt tree to the signed root, so a binary search names the first
// changed record in about log2(size) proofs. The audit keeps no leaf
// hashes: the search first finds the span (Root's granularity) that holds
// the first changed record, from the kept span hashes, then re-reads that
// span's records and searches within it. If the stored hashes were
// rewritten as well, the answer is only an upper bound.
func (a *Audit) FirstBad(cp trail.Checkpoint, prove func(m int64) (tlog.TreeProof, error), leaves func(from, to int64) ([]tlog.Hash, error)) (int64, error) {
	if a.maxSpans == 0 || cp.Size != a.size || cp.Size == 0 {
		return 0, fmt.Errorf("merkle: cannot name a changed record: the audit holds %d records from the start, the checkpoint %d", a.size, cp.Size)
	}
	good := func(m int64, root tlog.Hash) (bool, error) {
		if m == cp.Size {
			return root == cp.Hash, nil
		}
		p, err := prove(m)
		if err != nil {
			return false, err
		}
		return tlog.CheckTree(p, cp.Size, cp.Hash, m, root) == nil, nil
	}
	// Invariant: the prefix of lo spans is good, of hi spans (or the
	// whole log) is bad.
	span := int64(1) << a.level
	lo, hi := int64(0), (cp.Size+span-1)/span
	for hi-lo > 1 {
		m := lo + (hi-lo)/2
		ok, err := good(m*span, fold(edge(a.spans[:m])))
		if err != nil {
			return 0, err
		}
		if ok {
			lo = m
		} else {
			hi = m
		}
	}
	if span == 1 {
		return lo, nil
	}
	from, to := lo*span, min(hi*span, cp.Size)
	hs, err := leaves(from, to)
	if err != nil {
		return 0, fmt.Errorf("re-read seqs %d to %d: %w", from, to-1, err)
	}
	if int64(len(hs)) != to-from || (to-from == span && subtree(hs) != a.spans[lo]) {
		return 0, fmt.Errorf("the records of seqs %d to %d changed between two reads", from, to-1)
	}
	// The same search within the span, over its re-read leaves.
	left := edge(a.spans[:lo])
	l, h := int64(0), to-from
	for h-l > 1 {
		m := l + (h-l)/2
		ok, err := good(from+m, fold(append(left[:len(left):len(left)], edge(hs[:m])...)))
		if err != nil {
			return 0, err
		}
		if ok {
			l = m
		} else {
			h = m
		}
	}
	return from + l, nil
}
