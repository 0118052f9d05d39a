package seglog_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/storetest"
)

// TestIDKeyOrder checks that UUIDv7s made one after another get keys that
// do not go down, which is what makes the id index take appends, and that
// other ids get keys too.
func TestIDKeyOrder(t *testing.T) {
	prev := int64(-1 << 63)
	for i := range 5000 {
		id := uuid.Must(uuid.NewV7()).String()
		k := seglog.IDKey(id)
		if k < prev {
			t.Fatalf("UUIDv7 %d (%s): got key %x, below the one before, %x", i, id, k, prev)
		}
		prev = k
	}
	up, low := "0190F3A2-1B2C-7D3E-8F40-0123456789AB", "0190f3a2-1b2c-7d3e-8f40-0123456789ab"
	if seglog.IDKey(up) != seglog.IDKey(low) || seglog.IDKey(low) != 0x0190f3a21b2c7d3e {
		t.Fatalf("IDKey(%s) = %x, IDKey(%s) = %x; want both 0190f3a21b2c7d3e", up, seglog.IDKey(up), low, seglog.IDKey(low))
	}
	if a, b := seglog.IDKey("0190f3a2-1b2c-7d3e-8f40-0123456789zz"), seglog.IDKey("0190f3a2-1b2c-7d3e-8f40-0123456789zy"); a != b {
		t.Fatalf("two UUID-shaped ids with one first 8 bytes: got keys %x and %x, want one", a, b)
	}
	if a, b := seglog.IDKey("0190f3a2-1b2c-7d3g-8f40-0123456789ab"), seglog.IDKey("evt-1"); a == 0x0190f3a21b2c7d3e || a == b {
		t.Fatalf("ids that are not UUIDs: got keys %x and %x, want their hashes", a, b)
	}
}

// TestIDKeyCollisions stores ids that share their order key, as anyone
// may make them: Get and Lookup still find each one, from the tail and
// from the index.
func TestIDKeyCollisions(t *testing.T) {
	s := mustOpen(t, seglog.Config{Dir: t.TempDir(), IndexInterval: time.Hour})
	b := storetest.NewBuilder(seglog.DefaultLog)
	evs := make([]*trail.Event, 50)
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = fmt.Sprintf("0190f3a2-1b2c-7d3e-8f40-%012d", i)
		evs[i] = storetest.Events(1)[0]
		evs[i].ID = ids[i]
	}
	all := storetest.Append(t, s, b, evs...)
	check := func(when string) {
		t.Helper()
		for i, id := range ids {
			e, err := s.Get(t.Context(), id)
			if err != nil || e.Seq != all[i].Seq {
				t.Fatalf("%s: Get(%s): got %v, %v; want seq %d", when, id, e, err, all[i].Seq)
			}
		}
		m, err := s.Lookup(t.Context(), append(slices.Clone(ids[10:20]), "0190f3a2-1b2c-7d3e-8f40-999999999999"))
		if err != nil || len(m) != 10 || m[ids[15]] == nil || m[ids[15]].Seq != all[15].Seq {
			t.Fatalf("%s: Lookup: got %d entries, %v; want the 10 stored", when, len(m), err)
		}
	}
	check("in the tail")
	if err := s.WaitIndexed(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("indexed")
}

// TestIDLookupUsesTheIndex checks the plans of the id look-ups: both the
// key and the hash select rows through the (idk, idh) index, so that ids
// sharing a key are not each read from the log.
func TestIDLookupUsesTheIndex(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, 20)
	db := openRaw(t, filepath.Join(dir, "index", "index.db"))
	for _, q := range []string{
		"SELECT seq, off, idh FROM records WHERE idk = 1 AND idh = 2",
		"SELECT seq, off, idh FROM records WHERE (idk, idh) IN (VALUES (1, 2), (3, 4))",
	} {
		rows, err := db.Query("EXPLAIN QUERY PLAN " + q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if p := strings.Join(plan, "; "); !strings.Contains(p, "records_id (idk=? AND idh=?)") {
			t.Fatalf("%s: got plan %q, want a search of records_id on idk and idh", q, p)
		}
	}
}
