package merkle

import (
	"encoding/json"
	"fmt"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// An Audit rebuilds a log's Merkle tree from the record bytes alone, in seq
// order, so that it can be compared with a signed checkpoint. An audit
// from NewAudit trusts nothing the store computed and keeps every stored
// hash in memory (about 64 bytes a record), so that it can also give the
// root of any prefix and prove consistency. One from ResumeAudit checks
// only the records after a prefix already checked against a checkpoint,
// in constant memory.
type Audit struct {
	Log    string
	hashes []tlog.Hash // every stored hash (NewAudit)
	tree   *Tree       // or the frontier over the trusted prefix (ResumeAudit)
	last   []tlog.Hash // the stored hashes the latest Add created
	size   int64
}

// An AuditError names the first record that breaks the log.
type AuditError struct {
	Seq    int64
	Reason string
}

func (e *AuditError) Error() string { return fmt.Sprintf("seq %d: %s", e.Seq, e.Reason) }

// NewAudit starts an audit of log.
func NewAudit(log string) *Audit { return &Audit{Log: log} }

// ResumeAudit starts an audit of log after its first size records, whose
// stored hashes r reads. Those are trusted: the caller checks them against
// a signed checkpoint first (Root(size) gives the root they make). The
// audit keeps only the hashes that the next record needs, so Root of a
// size between the first and Size reads r and is only as good as the
// caller's comparison of each record's hashes (Created) with r's.
func ResumeAudit(log string, size int64, r tlog.HashReader) *Audit {
	return &Audit{Log: log, tree: NewTree(size, r), size: size}
}

// Size returns how many records were added.
func (a *Audit) Size() int64 { return a.size }

// Add checks that b is the next record of the log: it parses, names this
// log and the next seq, and then it joins the tree.
func (a *Audit) Add(b []byte) error {
	var r struct {
		ID  string `json:"id"`
		Log string `json:"log"`
		Seq *int64 `json:"seq"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Seq == nil {
		return &AuditError{a.size, fmt.Sprintf("record is not a trail record (%v)", err)}
	}
	switch {
	case r.Log != a.Log:
		return &AuditError{a.size, fmt.Sprintf("record %q names log %q, not %q", r.ID, r.Log, a.Log)}
	case *r.Seq < a.size:
		return &AuditError{a.size, fmt.Sprintf("record %q says it is seq %d: records are repeated or out of order (rows swapped or duplicated)", r.ID, *r.Seq)}
	case *r.Seq > a.size:
		return &AuditError{a.size, fmt.Sprintf("record is missing (the next record, %q, is seq %d): records were deleted or moved", r.ID, *r.Seq)}
	}
	if a.tree != nil {
		e := &trail.Entry{Hashes: []tlog.Hash{tlog.RecordHash(b)}}
		e.Seq = a.size
		if err := a.tree.Append([]*trail.Entry{e}); err != nil {
			return err
		}
		a.tree.Commit()
		a.last = e.Hashes
	} else {
		hs, err := tlog.StoredHashes(a.size, b, a)
		if err != nil {
			return err
		}
		a.hashes = append(a.hashes, hs...)
		a.last = hs
	}
	a.size++
	return nil
}

// Created returns the stored hashes that the latest Add created, in
// tlog's stored order: the leaf hash first. A store that holds the same
// record holds these hashes beside it.
func (a *Audit) Created() []tlog.Hash { return a.last }

// ReadHashes implements tlog.HashReader over the rebuilt tree.
func (a *Audit) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	if a.tree != nil {
		return a.tree.ReadHashes(indexes)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(a.hashes)) {
			return nil, fmt.Errorf("merkle: audit has no hash %d", x)
		}
		out[i] = a.hashes[x]
	}
	return out, nil
}

// Root returns the root of the rebuilt tree's first size records.
func (a *Audit) Root(size int64) (tlog.Hash, error) {
	if size > a.size {
		return tlog.Hash{}, fmt.Errorf("merkle: audit holds %d records, not %d", a.size, size)
	}
	return tlog.TreeHash(size, a)
}

// LeafHash returns the leaf hash of the record at seq, which must have
// been added to an audit from NewAudit.
func (a *Audit) LeafHash(seq int64) tlog.Hash {
	return a.hashes[tlog.StoredHashIndex(0, seq)]
}

// Check compares the rebuilt tree with a verified checkpoint cp, which
// must cover exactly the records added.
func (a *Audit) Check(cp trail.Checkpoint) error {
	if cp.Size != a.size {
		return fmt.Errorf("the checkpoint covers %d records but %d were read", cp.Size, a.size)
	}
	root, err := a.Root(cp.Size)
	if err != nil {
		return err
	}
	if root != cp.Hash {
		return fmt.Errorf("the %d records hash to root %v but the signed checkpoint says %v", cp.Size, root, cp.Hash)
	}
	return nil
}

// FirstBad finds the first record that differs from the log the signed
// checkpoint cp describes, given a way to fetch consistency proofs from
// size m to cp.Size. A proof built from untampered stored hashes ties each
// prefix of the rebuilt tree to the signed root, so a binary search over m
// names the first changed record in about log2(size) proofs. If the stored
// hashes were rewritten as well, the answer is only an upper bound.
func (a *Audit) FirstBad(cp trail.Checkpoint, prove func(m int64) (tlog.TreeProof, error)) (int64, error) {
	good := func(m int64) (bool, error) {
		if m == cp.Size {
			root, err := a.Root(m)
			return err == nil && root == cp.Hash, err
		}
		p, err := prove(m)
		if err != nil {
			return false, err
		}
		root, err := a.Root(m)
		if err != nil {
			return false, err
		}
		return tlog.CheckTree(p, cp.Size, cp.Hash, m, root) == nil, nil
	}
	// Invariant: the prefix of size lo is good, of size hi is bad.
	lo, hi := int64(0), cp.Size
	for hi-lo > 1 {
		m := lo + (hi-lo)/2
		ok, err := good(m)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = m
		} else {
			hi = m
		}
	}
	return hi - 1, nil
}
