package merkle_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

func records(t *testing.T, log string, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 0; i < n; i++ {
		e, err := trail.ParseEvent([]byte(fmt.Sprintf(`{"action":"a.b","actor":{"id":"u%d"},"source":{"service":"s"}}`, i)), trail.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := trail.Prepare(e, time.Unix(int64(i), 0), func() string { return fmt.Sprintf("id-%d", i) })
		out = append(out, p.Entry(log, int64(i)).Bytes)
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
