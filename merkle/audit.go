package merkle

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// DefaultSpans is how many subtree hashes an audit from NewAudit keeps, at
// most, to name a changed record later (FirstBad): 4,096 hashes, 128 KiB,
// whatever the length of the log.
const DefaultSpans = 4096

// An Audit rebuilds a log's Merkle tree from the record bytes alone, in seq
// order, so that it can be compared with a signed checkpoint. It trusts
// nothing the store computed, and its memory does not grow with the log:
// it keeps the right edge of the tree (one complete-subtree hash per set
// bit of the size, at most 64), which is all the next record and the root
// need, plus at most DefaultSpans hashes of equal, aligned subtrees ("spans",
// which double in length as the log grows) for FirstBad. An audit from
// ResumeAudit starts from the right edge of a trusted prefix.
type Audit struct {
	Log   string
	size  int64
	right []tlog.Hash // the right edge, largest subtree first
	last  []tlog.Hash // the stored hashes the latest Add created

	spans    []tlog.Hash // hashes of the subtrees of 2^level records, in order
	level    int
	maxSpans int // 0: no spans (ResumeAudit)

	keep int64     // a prefix size whose root to remember (-1: none)
	kept tlog.Hash // its root, once reached
}

// An AuditError names the first record that breaks the log.
type AuditError struct {
	Seq    int64
	Reason string
}

func (e *AuditError) Error() string { return fmt.Sprintf("seq %d: %s", e.Seq, e.Reason) }

// NewAudit starts an audit of log.
func NewAudit(log string) *Audit { return newAudit(log, DefaultSpans) }

func newAudit(log string, maxSpans int) *Audit {
	return &Audit{Log: log, maxSpans: maxSpans, keep: -1}
}

// ResumeAudit starts an audit of log after its first size records, whose
// stored hashes r reads. Those are trusted: the caller checks them against
// a signed checkpoint first (Root(size) gives the root they make), and
// compares each later record's hashes (Created) with the stored ones. Only
// the O(log size) hashes of the right edge are read. A resumed audit
// cannot name a changed record (FirstBad).
func ResumeAudit(log string, size int64, r tlog.HashReader) (*Audit, error) {
	a := newAudit(log, 0) // it keeps no spans: it cannot name a record
	a.size = size
	var indexes []int64
	start := int64(0)
	for l := 62; l >= 0; l-- {
		if size&(1<<l) != 0 {
			indexes = append(indexes, tlog.StoredHashIndex(l, start>>l))
			start += 1 << l
		}
	}
	if len(indexes) == 0 {
		return a, nil
	}
	hs, err := r.ReadHashes(indexes)
	if err != nil {
		return nil, err
	}
	if len(hs) != len(indexes) {
		return nil, fmt.Errorf("merkle: read %d hashes for %d indexes", len(hs), len(indexes))
	}
	a.right = hs
	return a, nil
}

// Size returns how many records were added.
func (a *Audit) Size() int64 { return a.size }

// KeepRoot asks the audit to remember the root of its first size records
// when it reaches them, so that Root(size) answers after the audit went
// past them (to check that a checkpoint extends an older one without a
// server). Only the latest size asked for is kept.
func (a *Audit) KeepRoot(size int64) {
	a.keep = size
	if size == a.size {
		a.kept = a.root()
	}
}

// Add checks that b is the next record of the log: it names this log and
// the next seq, and then it joins the tree.
func (a *Audit) Add(b []byte) error {
	if err := a.CheckRecord(b, a.size); err != nil {
		return err
	}
	a.AddLeaf(tlog.RecordHash(b))
	return nil
}

// CheckRecord checks that b is the record at seq of this log, as Add
// does. It reads only Log, so that a caller may check records on another
// goroutine, ahead of AddLeaf.
func (a *Audit) CheckRecord(b []byte, seq int64) error {
	if got, ok := quickPosition(b, a.Log); ok && got == seq {
		return nil
	}
	var r struct {
		ID  string `json:"id"`
		Log string `json:"log"`
		Seq *int64 `json:"seq"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Seq == nil {
		return &AuditError{seq, fmt.Sprintf("record is not a trail record (%v)", err)}
	}
	switch {
	case r.Log != a.Log:
		return &AuditError{seq, fmt.Sprintf("record %q names log %q, not %q", r.ID, r.Log, a.Log)}
	case *r.Seq < seq:
		return &AuditError{seq, fmt.Sprintf("record %q says it is seq %d: records are repeated or out of order (rows swapped or duplicated)", r.ID, *r.Seq)}
	case *r.Seq > seq:
		return &AuditError{seq, fmt.Sprintf("record is missing (the next record, %q, is seq %d): records were deleted or moved", r.ID, *r.Seq)}
	}
	return nil
}

// quickPosition reads the log and seq of a record in the shape the
// server writes (`{"id":"…","log":"…","seq":N,` first), without decoding
// the rest. It refuses (ok false, and the caller decodes the whole record)
// anything else: escapes in the id, another log, and any other "log" or
// "seq" key later in the record, which a decoder would read instead.
func quickPosition(b []byte, log string) (seq int64, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"id":"`))
	if !ok {
		return 0, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return 0, false
	}
	rest = rest[i:]
	if rest, ok = bytes.CutPrefix(rest, []byte(`","log":"`)); !ok {
		return 0, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(log)); !ok {
		return 0, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`","seq":`)); !ok {
		return 0, false
	}
	n := 0
	for n < len(rest) && n < 19 && '0' <= rest[n] && rest[n] <= '9' {
		n++
	}
	if n == 0 || n == len(rest) || (rest[n] != ',' && rest[n] != '}') || (n > 1 && rest[0] == '0') {
		return 0, false
	}
	seq, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	if err != nil || rest[len(rest)-1] != '}' {
		return 0, false
	}
	rest = rest[n:]
	// A decoder would take a later key that ends in q or g, in any case,
	// or one with an escape, as "seq" or "log": q and g are rare letters,
	// so the search is quick, and a false match only costs the decode.
	if bytes.IndexByte(rest, '\\') >= 0 || containsFold(rest, 'q') || containsFold(rest, 'g') {
		return 0, false
	}
	return seq, true
}

// containsFold reports whether b holds the lowercase letter c, or its
// uppercase, just before a quote.
func containsFold(b []byte, c byte) bool {
	return bytes.Contains(b, []byte{c, '"'}) || bytes.Contains(b, []byte{c - 'a' + 'A', '"'})
}

// AddLeaf adds the record whose leaf hash is h, checked by Check, to the
// tree.
func (a *Audit) AddLeaf(h tlog.Hash) {
	a.last = append(a.last[:0], h)
	if a.maxSpans > 0 && a.level == 0 {
		a.spans = append(a.spans, h)
	}
	for n, l := a.size, 1; n&1 == 1; n, l = n>>1, l+1 {
		h = tlog.NodeHash(a.right[len(a.right)-1], h)
		a.right = a.right[:len(a.right)-1]
		a.last = append(a.last, h)
		if a.maxSpans > 0 && l == a.level {
			a.spans = append(a.spans, h)
		}
	}
	a.right = append(a.right, h)
	a.size++
	if a.size == a.keep {
		a.kept = a.root()
	}
	if a.maxSpans > 0 && len(a.spans) > a.maxSpans {
		for i := range len(a.spans) / 2 {
			a.spans[i] = tlog.NodeHash(a.spans[2*i], a.spans[2*i+1])
		}
		a.spans = a.spans[:len(a.spans)/2]
		a.level++
	}
}

// Created returns the stored hashes that the latest Add created, in
// tlog's stored order: the leaf hash first. A store that holds the same
// record holds these hashes beside it. The slice is valid until the next
// Add.
func (a *Audit) Created() []tlog.Hash { return a.last }

// root returns the root of the whole tree from its right edge.
func (a *Audit) root() tlog.Hash { return fold(a.right) }

// Root returns the root of the rebuilt tree's first size records: size
// must be Size, the size given to KeepRoot, or a multiple of the span
// length below Size.
func (a *Audit) Root(size int64) (tlog.Hash, error) {
	switch {
	case size > a.size:
		return tlog.Hash{}, fmt.Errorf("merkle: audit holds %d records, not %d", a.size, size)
	case size == a.size:
		return a.root(), nil
	case size == a.keep:
		return a.kept, nil
	case a.maxSpans > 0 && size%(1<<a.level) == 0:
		return fold(edge(a.spans[:size>>a.level])), nil
	}
	return tlog.Hash{}, fmt.Errorf("merkle: audit kept no root of size %d", size)
}

// Check compares the rebuilt tree with a verified checkpoint cp, which
// must cover exactly the records added.
func (a *Audit) Check(cp trail.Checkpoint) error {
	if cp.Size != a.size {
		return fmt.Errorf("the checkpoint covers %d records but %d were read", cp.Size, a.size)
	}
	if root := a.root(); root != cp.Hash {
		return fmt.Errorf("the %d records hash to root %v but the signed checkpoint says %v", cp.Size, root, cp.Hash)
	}
	return nil
}

// fold returns the root of a tree from its right edge: the hashes of its
// complete subtrees, largest (leftmost) first.
func fold(edge []tlog.Hash) tlog.Hash {
	if len(edge) == 0 {
		return sha256.Sum256(nil) // tlog.TreeHash(0, …)
	}
	h := edge[len(edge)-1]
	for i := len(edge) - 2; i >= 0; i-- {
		h = tlog.NodeHash(edge[i], h)
	}
	return h
}

// edge returns the right edge of the tree whose leaves (or equal, aligned
// subtrees) are hs: the hash of each complete subtree, largest first.
func edge(hs []tlog.Hash) []tlog.Hash {
	var out []tlog.Hash
	for len(hs) > 0 {
		n := 1
		for n*2 <= len(hs) {
			n *= 2
		}
		out = append(out, subtree(hs[:n]))
		hs = hs[n:]
	}
	return out
}

// subtree returns the hash of the complete subtree over hs, whose length
// is a power of two.
func subtree(hs []tlog.Hash) tlog.Hash {
	buf := append([]tlog.Hash(nil), hs...)
	for len(buf) > 1 {
		for i := range len(buf) / 2 {
			buf[i] = tlog.NodeHash(buf[2*i], buf[2*i+1])
		}
		buf = buf[:len(buf)/2]
	}
	return buf[0]
}
