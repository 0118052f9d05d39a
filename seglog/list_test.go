package seglog_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/storetest"
)

// TestListFromBlocks lists records that are all indexed, in blocks of
// five, with times out of seq order so that the blocks' time ranges
// overlap, and compares every answer with a reference: whole lists and
// pages by cursor, ascending and descending, before and after a reopen
// (which reads the blocks back from the file).
func TestListFromBlocks(t *testing.T) {
	defer seglog.SetBlockSize(seglog.SetBlockSize(5))
	dir := t.TempDir()
	s, err := seglog.Open(seglog.Config{Dir: dir, IndexInterval: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b := storetest.NewBuilder(seglog.DefaultLog)
	var all []*trail.Entry
	for len(all) < 303 {
		evs := make([]*trail.Event, 1+r.IntN(20))
		for i := range evs {
			tm := base.Add(time.Duration(len(all)+i)*time.Second - time.Duration(r.IntN(90))*time.Second)
			evs[i] = &trail.Event{
				ID: storetest.NewID(), Time: &tm, Tenant: pick("", "t1", "t2", "t3"),
				Actor:  trail.Actor{ID: fmt.Sprintf("u%d", r.IntN(40)), Type: pick("user", "service")},
				Action: pick("account.created", "account.suspended", "billing.charge", "user.login"),
				Target: &trail.Target{ID: fmt.Sprintf("acct-%d", r.IntN(60)), Type: pick("account", "invoice")},
				Source: trail.Source{Service: pick("auth", "billing")}, Outcome: pick(trail.OutcomeSuccess, trail.OutcomeFailure),
			}
		}
		all = append(all, storetest.Append(t, s, b, evs...)...)
	}
	if err := s.WaitIndexed(t.Context()); err != nil {
		t.Fatal(err)
	}
	filters := []trail.Filter{
		{}, {Tenant: "t2"}, {Actor: "u7"}, {Target: "acct-3", TargetType: "account"},
		{Action: "account.", ActionPrefix: true, Tenant: "t1"}, {Action: "user.login", Outcome: trail.OutcomeFailure},
		{Since: base.Add(100 * time.Second), Until: base.Add(200 * time.Second)},
		{Tenant: "t3", Action: "b", ActionPrefix: true, Since: base.Add(30 * time.Second)},
		{Actor: "nobody"}, {Tenant: "nobody"},
	}
	check := func(s *seglog.Store) {
		for _, f := range filters {
			for _, desc := range []bool{false, true} {
				f.Desc = desc
				want := reference(&f, all)
				f.Limit = len(all) + 1
				got, err := s.List(t.Context(), &f)
				if err != nil {
					t.Fatalf("List(%+v): %v", f, err)
				}
				sameSeqs(t, fmt.Sprintf("List(%+v)", f), got, want)
				for _, limit := range []int{1, 7, 64} {
					sameSeqs(t, fmt.Sprintf("pages of %d of %+v", limit, f), pages(t, s, f, limit), want)
				}
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir)
	check(s)

	// Every full block is stored, compressed; the last, partial one is
	// not (the reopen above refilled it from the log).
	db := openRaw(t, filepath.Join(dir, "index", "index.db"))
	var full, other int
	if err := db.QueryRow("SELECT count(*) FILTER (WHERE z = 1 AND n = 5), count(*) FILTER (WHERE z != 1 OR n != 5) FROM blocks").Scan(&full, &other); err != nil {
		t.Fatal(err)
	}
	if full != len(all)/5 || other != 0 {
		t.Fatalf("blocks: got %d full and compressed and %d others, want %d and none", full, other, len(all)/5)
	}
}

// reference is what List must answer: every entry f matches, in
// (time, seq) order, reversed if f.Desc.
func reference(f *trail.Filter, all []*trail.Entry) []*trail.Entry {
	var out []*trail.Entry
	for _, e := range all {
		if f.Matches(&e.Record) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *trail.Entry) int {
		c := cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Seq, b.Seq))
		if f.Desc {
			return -c
		}
		return c
	})
	return out
}

// pages lists f limit at a time, following cursors.
func pages(t *testing.T, s *seglog.Store, f trail.Filter, limit int) []*trail.Entry {
	t.Helper()
	f.Limit, f.After = limit, nil
	var out []*trail.Entry
	for len(out) < 10000 {
		got, err := s.List(t.Context(), &f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		out = append(out, got...)
		if len(got) < limit {
			break
		}
		f.After = trail.CursorOf(got[len(got)-1])
	}
	return out
}

func sameSeqs(t *testing.T, what string, got, want []*trail.Entry) {
	t.Helper()
	seqs := func(es []*trail.Entry) []int64 {
		out := make([]int64, len(es))
		for i, e := range es {
			out[i] = e.Seq
		}
		return out
	}
	if g, w := seqs(got), seqs(want); !slices.Equal(g, w) {
		t.Fatalf("%s: got seqs %v, want %v", what, g, w)
	}
}
