package merkle_test

import (
	"bytes"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
	"github.com/trail-audit/trail/storetest"
	"golang.org/x/mod/sumdb/tlog"
)

// records returns the bytes of n records of log, with ids id-0, id-1, ...
func records(t *testing.T, log string, n int) [][]byte {
	t.Helper()
	b := storetest.NewBuilder(log)
	ids := 0
	b.NewID = func() string { ids++; return fmt.Sprintf("id-%d", ids-1) }
	var out [][]byte
	for _, e := range b.Entries(t, storetest.Events(n)...) {
		out = append(out, e.Bytes)
	}
	return out
}

// storedTree returns every stored hash of the tree over recs, as tlog
// computes them: the reference the audit must match.
func storedTree(tb testing.TB, recs [][]byte) *memHashes {
	tb.Helper()
	m := &memHashes{}
	for i, b := range recs {
		hs, err := tlog.StoredHashes(int64(i), b, m)
		if err != nil {
			tb.Fatal(err)
		}
		m.hashes = append(m.hashes, hs...)
	}
	return m
}

// leafBytes returns n distinct byte strings, standing in for records.
func leafBytes(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "record %d", i)
	}
	return out
}

// TestAuditMatchesTlog checks the root at every size from 1 to 1,000, and
// at random larger ones, and each record's created hashes, against tlog.
func TestAuditMatchesTlog(t *testing.T) {
	recs := leafBytes(1000)
	ref := storedTree(t, recs)
	a := merkle.NewAudit("main")
	for i, b := range recs {
		a.AddLeaf(tlog.RecordHash(b))
		want, err := tlog.StoredHashes(int64(i), b, ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Created(); !slices.Equal(got, want) {
			t.Fatalf("size %d: created %v, want %v", i+1, got, want)
		}
		wantRoot, _ := tlog.TreeHash(int64(i+1), ref)
		if got, err := a.Root(int64(i + 1)); err != nil || got != wantRoot {
			t.Fatalf("size %d: root %v (%v), want %v", i+1, got, err, wantRoot)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3 {
		n := 1000 + rng.IntN(100_000)
		recs := leafBytes(n)
		a := merkle.NewAudit("main")
		for _, b := range recs {
			a.AddLeaf(tlog.RecordHash(b))
		}
		want, _ := tlog.TreeHash(int64(n), storedTree(t, recs))
		if got, err := a.Root(int64(n)); err != nil || got != want {
			t.Fatalf("size %d: root %v (%v), want %v", n, got, err, want)
		}
	}
}

// TestAuditMemoryBounded checks that the audit's state does not grow with
// the log: the right edge holds one hash per set bit of the size, and the
// spans stay under their bound.
func TestAuditMemoryBounded(t *testing.T) {
	a := merkle.NewAudit("main")
	var leaf tlog.Hash
	for i := range 1_000_000 {
		leaf[0], leaf[1], leaf[2] = byte(i), byte(i>>8), byte(i>>16)
		a.AddLeaf(leaf)
		if i%99_991 == 0 || i == 999_999 {
			n, _ := a.Spans()
			if e := a.Edge(); e != bits.OnesCount64(uint64(i+1)) || e > 64 || n > merkle.DefaultSpans {
				t.Fatalf("after %d adds: %d edge hashes and %d spans, want %d and at most %d", i+1, e, n, bits.OnesCount64(uint64(i+1)), merkle.DefaultSpans)
			}
		}
	}
	if n, level := a.Spans(); n != 1_000_000>>level || n > merkle.DefaultSpans || n <= merkle.DefaultSpans/2 {
		t.Fatalf("after 1M adds: %d spans of level %d, want 1M>>level, at most %d and more than half", n, level, merkle.DefaultSpans)
	}
}

func TestAudit(t *testing.T) {
	recs := records(t, "main", 50)
	ref := storedTree(t, recs)
	orig := merkle.NewAudit("main")
	for _, b := range recs {
		if err := orig.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	root, _ := tlog.TreeHash(50, ref)
	cp := trail.Checkpoint{Origin: "o", Size: 50, Hash: root}
	if err := orig.Check(cp); err != nil {
		t.Fatal(err)
	}
	prove := func(m int64) (tlog.TreeProof, error) { return tlog.ProveTree(50, m, ref) }

	for _, maxSpans := range []int{merkle.DefaultSpans, 1, 4, 7} {
		for bad := range 50 {
			edited := slices.Clone(recs)
			edited[bad] = bytes.Replace(recs[bad], []byte(`"u`), []byte(`"x`), 1)
			reads := 0
			leaves := func(from, to int64) ([]tlog.Hash, error) {
				reads++
				var hs []tlog.Hash
				for _, b := range edited[from:to] {
					hs = append(hs, tlog.RecordHash(b))
				}
				return hs, nil
			}
			a := merkle.NewAuditSpans("main", maxSpans)
			for _, b := range edited {
				if err := a.Add(b); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Check(cp); err == nil {
				t.Fatalf("edit of seq %d: check passed", bad)
			}
			got, err := a.FirstBad(cp, prove, leaves)
			if err != nil || got != int64(bad) {
				t.Fatalf("spans %d: first bad: got %d %v, want %d", maxSpans, got, err, bad)
			}
			if maxSpans == merkle.DefaultSpans && reads != 0 {
				t.Fatalf("spans of one record: got %d re-reads, want none", reads)
			}
			if maxSpans < 50 && reads != 1 {
				t.Fatalf("spans %d: got %d re-reads, want 1", maxSpans, reads)
			}
		}
	}

	// A re-read that does not give the records read first is an error,
	// not a wrong seq.
	a := merkle.NewAuditSpans("main", 4)
	for i, b := range recs {
		if i == 20 {
			b = bytes.Replace(b, []byte(`"u`), []byte(`"x`), 1)
		}
		if err := a.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	orig2 := func(from, to int64) ([]tlog.Hash, error) {
		var hs []tlog.Hash
		for _, b := range recs[from:to] {
			hs = append(hs, tlog.RecordHash(b))
		}
		return hs, nil
	}
	if got, err := a.FirstBad(cp, prove, orig2); err == nil || !strings.Contains(err.Error(), "changed between two reads") {
		t.Fatalf("re-read of other records: got %d %v, want an error", got, err)
	}

	for _, tt := range []struct {
		name string
		recs [][]byte
		want string
	}{
		{"gap", append(append([][]byte{}, recs[:3]...), recs[4:]...), "seq 3: record is missing"},
		{"swap", append(append([][]byte{}, recs[0], recs[2], recs[1]), recs[3:]...), "seq 1: record is missing"},
		{"repeat", append(append([][]byte{}, recs[:3]...), recs[2:]...), "seq 3: record \"id-2\" says it is seq 2"},
		{"other log", records(t, "other", 1), "names log \"other\""},
		{"second seq key", [][]byte{[]byte(`{"id":"a","log":"main","seq":0,"data":{},"seq":4}`)}, "seq 0: record is missing (the next record, \"a\", is seq 4)"},
		{"second log key", [][]byte{[]byte(`{"id":"a","log":"main","seq":0,"log":"other"}`)}, "names log \"other\""},
		{"second seq key, case-folded", [][]byte{[]byte(`{"id":"a","log":"main","seq":0,"SEQ":4}`)}, "is seq 4"},
		{"second seq key, escaped", [][]byte{[]byte(`{"id":"a","log":"main","seq":0,"se\u0071":4}`)}, "is seq 4"},
		{"second log key, case-folded", [][]byte{[]byte(`{"id":"a","log":"main","seq":0,"LoG":"other"}`)}, "names log \"other\""},
		{"not json", [][]byte{[]byte(`{"id":"a","log":"main","seq":0,`)}, "not a trail record"},
		{"seq with a leading zero", [][]byte{[]byte(`{"id":"a","log":"main","seq":00}`)}, "not a trail record"},
	} {
		a := merkle.NewAudit("main")
		var err error
		for _, b := range tt.recs {
			if err = a.Add(b); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestAuditKeepRoot checks that the root of a prefix asked for before the
// audit reaches it is kept, and that other prefixes' roots are refused.
func TestAuditKeepRoot(t *testing.T) {
	recs := leafBytes(300)
	ref := storedTree(t, recs)
	a := merkle.NewAuditSpans("main", 8)
	a.KeepRoot(123)
	for _, b := range recs {
		a.AddLeaf(tlog.RecordHash(b))
	}
	want, _ := tlog.TreeHash(123, ref)
	if got, err := a.Root(123); err != nil || got != want {
		t.Fatalf("kept root of 123: got %v %v, want %v", got, err, want)
	}
	if _, level := a.Spans(); level != 6 {
		t.Fatalf("300 records in at most 8 spans: got level %d, want 6", level)
	}
	want, _ = tlog.TreeHash(256, ref)
	if got, err := a.Root(256); err != nil || got != want {
		t.Fatalf("root at a span boundary: got %v %v, want %v", got, err, want)
	}
	if got, err := a.Root(124); err == nil {
		t.Fatalf("root of 124, not kept: got %v, want an error", got)
	}
}

// TestResumeAudit checks that an audit resumed over a trusted prefix makes
// the same hashes and root as one that read every record, and that an
// edited record after the prefix makes other hashes.
func TestResumeAudit(t *testing.T) {
	recs := records(t, "main", 40)
	full := merkle.NewAudit("main")
	var created [][]tlog.Hash
	for _, b := range recs {
		if err := full.Add(b); err != nil {
			t.Fatal(err)
		}
		created = append(created, slices.Clone(full.Created()))
	}
	ref := storedTree(t, recs)
	for _, from := range []int64{0, 1, 7, 16, 39} {
		ref.reads = 0
		a, err := merkle.ResumeAudit("main", from, ref)
		if err != nil {
			t.Fatal(err)
		}
		if ref.reads != bits.OnesCount64(uint64(from)) {
			t.Fatalf("from %d: read %d hashes, want %d", from, ref.reads, bits.OnesCount64(uint64(from)))
		}
		want, _ := tlog.TreeHash(from, ref)
		if got, err := a.Root(from); err != nil || got != want {
			t.Fatalf("from %d: prefix root: got %v %v, want %v", from, got, err, want)
		}
		for seq := from; seq < 40; seq++ {
			if err := a.Add(recs[seq]); err != nil {
				t.Fatal(err)
			}
			if got := a.Created(); !slices.Equal(got, created[seq]) {
				t.Fatalf("from %d: seq %d made hashes %v, want %v", from, seq, got, created[seq])
			}
		}
		want, _ = full.Root(40)
		if got, err := a.Root(40); err != nil || got != want {
			t.Fatalf("from %d: root: got %v %v, want %v", from, got, err, want)
		}
	}
	a, err := merkle.ResumeAudit("main", 10, ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Add(recs[11]); err == nil || !strings.Contains(err.Error(), "seq 10: record is missing") {
		t.Fatalf("gap after the prefix: got %v, want seq 10 missing", err)
	}
	edited := bytes.Replace(recs[10], []byte(`"u`), []byte(`"x`), 1)
	if err := a.Add(edited); err != nil {
		t.Fatal(err)
	}
	if got := a.Created(); got[0] == created[10][0] {
		t.Fatalf("edited seq 10: got leaf hash %v, want one other than the stored %v", got[0], created[10][0])
	}
}

// BenchmarkAudit measures the audit of records of about 700 bytes, in
// the shape the server writes them.
func BenchmarkAudit(b *testing.B) {
	pad := strings.Repeat("x", 420)
	recs := make([][]byte, 1<<16)
	for i := range recs {
		recs[i] = fmt.Appendf(nil, `{"id":"01a23ce7-191c-73b8-af86-%012d","log":"main","seq":%d,"received_at":"2026-12-03T17:15:07.965885176Z","action":"bench.event","actor":{"id":"user-8161","type":"user"},"source":{"service":"trail-bench"},"data":{"n":%d,"pad":"%s"}}`, i, i, i, pad)
	}
	b.SetBytes(int64(len(recs[0])))
	b.ReportAllocs()
	a := merkle.NewAudit("main")
	for i := 0; b.Loop(); i++ {
		if i%len(recs) == 0 && i > 0 {
			b.StopTimer()
			a = merkle.NewAudit("main")
			b.StartTimer()
		}
		if err := a.Add(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
}
