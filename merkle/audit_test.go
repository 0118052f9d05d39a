package merkle_test

import (
	"bytes"
	"fmt"
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

func TestAudit(t *testing.T) {
	recs := records(t, "main", 50)
	orig := merkle.NewAudit("main")
	for _, b := range recs {
		if err := orig.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	root, _ := orig.Root(50)
	cp := trail.Checkpoint{Origin: "o", Size: 50, Hash: root}
	if err := orig.Check(cp); err != nil {
		t.Fatal(err)
	}
	prove := func(m int64) (tlog.TreeProof, error) { return tlog.ProveTree(50, m, orig) }

	for bad := int64(0); bad < 50; bad += 7 {
		a := merkle.NewAudit("main")
		for i, b := range recs {
			if int64(i) == bad {
				b = bytes.Replace(b, []byte(`"u`), []byte(`"x`), 1)
			}
			if err := a.Add(b); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Check(cp); err == nil {
			t.Fatalf("edit of seq %d: check passed", bad)
		}
		got, err := a.FirstBad(cp, prove)
		if err != nil || got != bad {
			t.Fatalf("first bad: got %d %v, want %d", got, err, bad)
		}
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
		created = append(created, full.Created())
	}
	for _, from := range []int64{0, 1, 7, 16, 39} {
		a := merkle.ResumeAudit("main", from, full)
		want, _ := full.Root(from)
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
	a := merkle.ResumeAudit("main", 10, full)
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
