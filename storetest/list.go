package storetest

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
)

// listEvents returns n events with a few values in each filterable field,
// and times on a minute grid so that many records share a time.
func listEvents(n int, base time.Time, seed uint64) []*trail.Event {
	r := rand.New(rand.NewPCG(seed, 7))
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	out := make([]*trail.Event, n)
	for i := range out {
		tm := base.Add(time.Duration(r.IntN(20)) * time.Minute)
		e := &trail.Event{
			ID:      NewID(),
			Time:    &tm,
			Tenant:  pick("", "t1", "t2"),
			Actor:   trail.Actor{ID: pick("u1", "u2", "u3"), Type: pick("", "user", "service")},
			Action:  pick("account.created", "account.suspended", "accounting.closed", "billing.charge", "user.login"),
			Source:  trail.Source{Service: pick("auth", "billing")},
			Outcome: pick(trail.OutcomeSuccess, trail.OutcomeFailure, trail.OutcomeUnknown),
		}
		switch r.IntN(4) {
		case 1:
			e.Target = &trail.Target{ID: "acct-1", Type: "account"}
		case 2:
			e.Target = &trail.Target{ID: "inv-2", Type: "invoice"}
		case 3:
			e.Target = &trail.Target{ID: "acct-1"}
		}
		out[i] = e
	}
	return out
}

// match is the reference for List: the field filters of Filter.Matches
// (which the live tail shares) plus the cursor.
func match(f *trail.Filter, e *trail.Entry) bool {
	switch {
	case !f.Matches(&e.Record),
		f.After != nil && !f.Desc && !f.After.Less(trail.CursorOf(e)),
		f.After != nil && f.Desc && !trail.CursorOf(e).Less(f.After):
		return false
	}
	return true
}

// want returns the entries f selects from all, in List's order, ignoring
// f.Limit.
func want(f *trail.Filter, all []*trail.Entry) []*trail.Entry {
	var out []*trail.Entry
	for _, e := range all {
		if match(f, e) {
			out = append(out, e)
		}
	}
	sortEntries(out, f.Desc)
	return out
}

func sortEntries(es []*trail.Entry, desc bool) {
	slices.SortFunc(es, func(a, b *trail.Entry) int {
		ca, cb := trail.CursorOf(a), trail.CursorOf(b)
		c := cmp.Compare(ca.Time, cb.Time)
		if c == 0 {
			c = cmp.Compare(ca.Log, cb.Log)
		}
		if c == 0 {
			c = cmp.Compare(ca.Seq, cb.Seq)
		}
		if desc {
			return -c
		}
		return c
	})
}

func testList(t *testing.T, s trail.Store, b *Builder) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var all []*trail.Entry
	evs := listEvents(150, base, 1)
	for len(evs) > 0 {
		n := min(len(evs), 40)
		all = append(all, Append(t, s, b, evs[:n]...)...)
		evs = evs[n:]
	}
	edge := base.Add(5 * time.Minute)
	if !slices.ContainsFunc(all, func(e *trail.Entry) bool { return e.Time.Equal(edge) }) {
		t.Fatalf("test data: no record at %v to test the Since and Until bounds", edge)
	}

	for _, tt := range []struct {
		name string
		f    trail.Filter
	}{
		{"all", trail.Filter{}},
		{"tenant", trail.Filter{Tenant: "t1"}},
		{"actor", trail.Filter{Actor: "u2"}},
		{"actor type", trail.Filter{ActorType: "service"}},
		{"action", trail.Filter{Action: "account.created"}},
		{"action prefix", trail.Filter{Action: "account.", ActionPrefix: true}},
		{"action prefix all", trail.Filter{ActionPrefix: true}},
		{"target", trail.Filter{Target: "acct-1"}},
		{"target type", trail.Filter{TargetType: "invoice"}},
		{"source", trail.Filter{Source: "billing"}},
		{"outcome", trail.Filter{Outcome: trail.OutcomeFailure}},
		{"since", trail.Filter{Since: edge}},
		{"until", trail.Filter{Until: edge}},
		{"window", trail.Filter{Since: edge, Until: edge.Add(7 * time.Minute)}},
		{"combined", trail.Filter{Tenant: "t2", Action: "account.", ActionPrefix: true, Outcome: trail.OutcomeSuccess}},
		{"target and type", trail.Filter{Target: "acct-1", TargetType: "account", Actor: "u1"}},
		{"no match", trail.Filter{Tenant: "nobody"}},
		{"no prefix match", trail.Filter{Action: "account", ActionPrefix: false}},
	} {
		for _, desc := range []bool{false, true} {
			name := tt.name + map[bool]string{false: "/asc", true: "/desc"}[desc]
			t.Run(name, func(t *testing.T) {
				f := tt.f
				f.Desc = desc
				exp := want(&f, all)
				if len(exp) == 0 && !strings.HasPrefix(tt.name, "no ") {
					t.Fatalf("test data: filter %+v matches nothing", tt.f)
				}

				f.Limit = len(all) + 10
				got := mustList(t, s, &f)
				sameIDs(t, fmt.Sprintf("List(%+v)", f), got, exp)
				for i, e := range got {
					sameEntry(t, "List", e, exp[i])
				}

				// Paging by cursor visits the same entries.
				paged := page(t, s, f, 7, nil)
				sameIDs(t, "paging by 7", paged, exp)
			})
		}
	}
}

func testListLimit(t *testing.T, s trail.Store, b *Builder) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	all := Append(t, s, b, listEvents(30, base, 2)...)
	for _, desc := range []bool{false, true} {
		f := trail.Filter{Desc: desc}
		exp := want(&f, all)
		for _, limit := range []int{1, 5, 30, 31} {
			f.Limit = limit
			got := mustList(t, s, &f)
			sameIDs(t, fmt.Sprintf("List(limit %d, desc %v)", limit, desc), got, exp[:min(limit, len(exp))])
		}
		// A cursor at the last entry leaves nothing after it.
		f.Limit, f.After = 10, trail.CursorOf(exp[len(exp)-1])
		if got := mustList(t, s, &f); len(got) != 0 {
			t.Fatalf("List after the last entry (desc %v): got %d entries, want none", desc, len(got))
		}
		// A cursor for a position between records resumes after it.
		c := trail.CursorOf(exp[9])
		f.After = &trail.Cursor{Time: c.Time - 1, Log: c.Log, Seq: 1 << 40}
		if desc {
			f.After.Time = c.Time + 1
		}
		rest := want(&f, all)
		if len(rest) == 0 || rest[0].Time.UnixNano() != c.Time {
			t.Fatalf("test data: no record at the time of the 10th")
		}
		sameIDs(t, "List after a position between records", mustList(t, s, &f), rest[:min(10, len(rest))])

		// MaxBytes ends the list at the entry that reaches it.
		f.Limit, f.After = 30, nil
		for _, n := range []int{1, 4, 30} {
			var size int64
			for _, e := range exp[:n] {
				size += int64(len(e.Bytes))
			}
			f.MaxBytes = size
			sameIDs(t, fmt.Sprintf("List(MaxBytes of %d entries, desc %v)", n, desc), mustList(t, s, &f), exp[:n])
			f.MaxBytes = size - 1
			sameIDs(t, fmt.Sprintf("List(MaxBytes 1 short of %d entries, desc %v)", n, desc), mustList(t, s, &f), exp[:n])
		}
		f.MaxBytes = 0
	}
}

// page lists every entry f selects, limit at a time, following cursors. If
// between is set, it is called after each page.
func page(t *testing.T, s trail.Store, f trail.Filter, limit int, between func()) []*trail.Entry {
	t.Helper()
	f.Limit, f.After = limit, nil
	var out []*trail.Entry
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("paging does not end")
		}
		got := mustList(t, s, &f)
		if len(got) > limit {
			t.Fatalf("List with limit %d: got %d entries", limit, len(got))
		}
		for _, e := range got {
			c := trail.CursorOf(e)
			if f.After != nil && (!f.Desc && !f.After.Less(c) || f.Desc && !c.Less(f.After)) {
				t.Fatalf("List after %+v (desc %v): got %+v, which is not after it", *f.After, f.Desc, *c)
			}
			f.After = c
		}
		out = append(out, got...)
		if len(got) < limit {
			return out
		}
		if between != nil {
			between()
		}
	}
}

func testListPagingWhileAppending(t *testing.T, s trail.Store, b *Builder) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	initial := make(map[string]bool)
	evs := listEvents(200, base, 3)
	for len(evs) > 0 {
		n := min(len(evs), 50)
		for _, e := range Append(t, s, b, evs[:n]...) {
			initial[e.ID] = true
		}
		evs = evs[n:]
	}

	for _, desc := range []bool{false, true} {
		// The writer appends batches whose times fall before, at and after
		// the pager's position, until the pager is done.
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			werr     error
			appended = make(map[string]bool)
			progress = make(chan struct{}, 1)
			stop     = make(chan struct{})
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				select {
				case <-stop:
					return
				default:
				}
				entries := b.Entries(t, listEvents(5, base, uint64(100+i))...)
				if err := s.Append(t.Context(), entries); err != nil {
					mu.Lock()
					werr = fmt.Errorf("append at seq %d: %w", entries[0].Seq, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				for _, e := range entries {
					appended[e.ID] = true
				}
				mu.Unlock()
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		// Each page waits for a batch to land, so that pages and appends
		// interleave.
		got := page(t, s, trail.Filter{Desc: desc}, 9, func() {
			select {
			case <-progress:
			case <-done:
			}
		})
		close(stop)
		wg.Wait()
		if werr != nil {
			t.Fatalf("writer: %v", werr)
		}

		seen := make(map[string]bool)
		for _, e := range got {
			if seen[e.ID] {
				t.Fatalf("desc %v: record %s (seq %d) listed twice", desc, e.ID, e.Seq)
			}
			seen[e.ID] = true
			if !initial[e.ID] && !appended[e.ID] {
				t.Fatalf("desc %v: listed unknown id %s", desc, e.ID)
			}
		}
		for id := range initial {
			if !seen[id] {
				t.Fatalf("desc %v: record %s existed when paging began but was skipped", desc, id)
			}
		}
		for id := range appended {
			initial[id] = true
		}
	}
}
