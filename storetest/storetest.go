// Package storetest is the conformance suite for trail.Store. Every store
// runs it in one line:
//
//	func TestConformance(t *testing.T) { storetest.Run(t, openStore) }
//
// It states the append-only rules of store.go as tests: seqs are dense, a
// reread returns identical bytes, a refused batch leaves nothing behind, a
// taken seq fences the writer, and cursor paging never skips or repeats a
// record, even while another goroutine appends.
package storetest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// Run runs the conformance suite. open must return a fresh, empty store
// whose Head names the log it appends to, and arrange (with t.Cleanup) for
// it to be closed; Run never closes it.
func Run(t *testing.T, open func(t *testing.T) trail.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s trail.Store, b *Builder)
	}{
		{"Empty", testEmpty},
		{"AppendGet", testAppendGet},
		{"Lookup", testLookup},
		{"Conflict", testConflict},
		{"Fenced", testFenced},
		{"List", testList},
		{"ListLimit", testListLimit},
		{"ListPagingWhileAppending", testListPagingWhileAppending},
		{"Scan", testScan},
		{"ReadHashes", testReadHashes},
		{"Checkpoint", testCheckpoint},
		{"Logs", testLogs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			h, err := s.Head(t.Context())
			if err != nil {
				t.Fatalf("Head: %v", err)
			}
			if h.Log == "" || h.Size != 0 {
				t.Fatalf("Head of a fresh store: got %+v, want a named log of size 0", h)
			}
			tt.fn(t, s, NewBuilder(h.Log))
		})
	}
}

func testEmpty(t *testing.T, s trail.Store, b *Builder) {
	ctx := t.Context()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: got %v, want nil", err)
	}
	// Stores wrap ErrNotFound with the operation, so that logs name it.
	if _, err := s.Get(ctx, "absent"); !errors.Is(err, trail.ErrNotFound) || !strings.Contains(err.Error(), `get "absent"`) {
		t.Fatalf("Get of an absent id: got %v, want ErrNotFound wrapped by `get \"absent\"`", err)
	}
	m, err := s.Lookup(ctx, []string{"absent"})
	if err != nil || len(m) != 0 {
		t.Fatalf("Lookup of an absent id: got %v, %v; want an empty map", m, err)
	}
	if m, err := s.Lookup(ctx, nil); err != nil || len(m) != 0 {
		t.Fatalf("Lookup of no ids: got %v, %v; want an empty map", m, err)
	}
	got, err := s.List(ctx, &trail.Filter{Limit: 10})
	if err != nil || len(got) != 0 {
		t.Fatalf("List: got %d entries, %v; want none", len(got), err)
	}
	if _, err := s.Checkpoint(ctx, b.Log(), -1); !errors.Is(err, trail.ErrNotFound) || !strings.Contains(err.Error(), "checkpoint of "+b.Log()) {
		t.Fatalf("Checkpoint: got %v, want ErrNotFound wrapped by %q", err, "checkpoint of "+b.Log())
	}
	if err := s.Append(ctx, nil); err != nil {
		t.Fatalf("Append of no entries: got %v, want nil", err)
	}
	wantSize(t, s, 0)
	for _, h := range mustLogs(t, s) {
		if h.Size != 0 {
			t.Fatalf("Logs of an empty store: got %+v, want no log or size 0", h)
		}
	}
}

func testAppendGet(t *testing.T, s trail.Store, b *Builder) {
	var all []*trail.Entry
	for _, n := range []int{1, 5, 3, 16} {
		all = append(all, Append(t, s, b, Events(n)...)...)
		wantSize(t, s, int64(len(all)))
	}
	for i, want := range all {
		if want.Seq != int64(i) {
			t.Fatalf("builder: got seq %d, want %d", want.Seq, i)
		}
		got, err := s.Get(t.Context(), want.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", want.ID, err)
		}
		sameEntry(t, "Get", got, want)
		sameRecord(t, "Get", got, want)
	}
	if _, err := s.Get(t.Context(), "absent"); !errors.Is(err, trail.ErrNotFound) {
		t.Fatalf("Get of an absent id: got %v, want ErrNotFound", err)
	}
	// Times and data round-trip through the stored bytes.
	ev := Event(t, `{"id":"evt-time","time":"2001-02-03T04:05:06.123456789Z","tenant":"t","actor":{"id":"a","type":"user","name":"Ann","ip":"10.0.0.1"},"action":"x.y","target":{"id":"g","type":"k"},"source":{"service":"s","host":"h"},"outcome":"failure","request_id":"r","data":{"k":[1,"2",{"3":null}]}}`)
	want := Append(t, s, b, ev)[0]
	got, err := s.Get(t.Context(), "evt-time")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	sameEntry(t, "Get", got, want)
	sameRecord(t, "Get", got, want)
}

func testLookup(t *testing.T, s trail.Store, b *Builder) {
	all := Append(t, s, b, Events(6)...)
	ids := []string{all[1].ID, "absent", all[4].ID, all[1].ID}
	m, err := s.Lookup(t.Context(), ids)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if len(m) != 2 || m[all[1].ID] == nil || m[all[4].ID] == nil {
		t.Fatalf("Lookup(%q): got ids %v, want exactly %s and %s", ids, keys(m), all[1].ID, all[4].ID)
	}
	for _, want := range []*trail.Entry{all[1], all[4]} {
		got := m[want.ID]
		if got.ID != want.ID || got.Log != want.Log || got.Seq != want.Seq {
			t.Fatalf("Lookup: got %s/%s/%d, want %s/%s/%d", got.ID, got.Log, got.Seq, want.ID, want.Log, want.Seq)
		}
		if got.Digest != want.Digest {
			t.Fatalf("Lookup(%s): digest differs", want.ID)
		}
		if !slices.Equal(got.Hashes, want.Hashes) {
			t.Fatalf("Lookup(%s): got hashes %v, want %v", want.ID, got.Hashes, want.Hashes)
		}
		// The ingest layer answers a replay with the stored receipt.
		gr, wr := got.Receipt(), want.Receipt()
		if !gr.ReceivedAt.Equal(wr.ReceivedAt) {
			t.Fatalf("Lookup(%s): got received_at %v, want %v", want.ID, gr.ReceivedAt, wr.ReceivedAt)
		}
		gr.ReceivedAt = wr.ReceivedAt
		if gr != wr {
			t.Fatalf("Lookup(%s): got receipt %+v, want %+v", want.ID, gr, wr)
		}
	}
}

func testConflict(t *testing.T, s trail.Store, b *Builder) {
	ctx := t.Context()
	stored := Append(t, s, b, Events(3)...)

	// A batch holding a stored id fails as a whole.
	refused := b.Clone().Entries(t,
		Event(t, `{"id":"new-1","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`),
		Event(t, fmt.Sprintf(`{"id":%q,"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`, stored[1].ID)),
		Event(t, `{"id":"new-2","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`),
	)
	err := s.Append(ctx, refused)
	if code := trail.ErrorCode(err); code != trail.ECONFLICT {
		t.Fatalf("Append with a stored id: got %v (code %q), want an *Error with code %q", err, code, trail.ECONFLICT)
	}
	wantNothingOf(t, s, refused, 3)

	// A batch that holds one new id twice fails as a whole.
	twice := b.Clone().Entries(t,
		Event(t, `{"id":"new-3","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`),
		Event(t, `{"id":"twice","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`),
		Event(t, `{"id":"twice","action":"a.c","actor":{"id":"u"},"source":{"service":"s"}}`),
	)
	if err := s.Append(ctx, twice); err == nil {
		t.Fatal("Append of a batch with a repeated id: got nil, want an error")
	}
	wantNothingOf(t, s, twice, 3)

	// The store takes the next good batch at the same seq.
	ok := Append(t, s, b,
		Event(t, `{"id":"new-1","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`),
		Event(t, `{"id":"new-2","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`),
	)
	wantSize(t, s, 5)
	for _, want := range ok {
		got, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatalf("Get(%s) after a good batch: %v", want.ID, err)
		}
		sameEntry(t, "Get", got, want)
	}
}

func testFenced(t *testing.T, s trail.Store, b *Builder) {
	ctx := t.Context()
	Append(t, s, b, Events(2)...)
	stale := b.Clone()
	Append(t, s, b, Events(3)...)

	// A seq that is taken fences the writer.
	taken := stale.Entries(t, Events(2)...)
	if err := s.Append(ctx, taken); !errors.Is(err, trail.ErrFenced) {
		t.Fatalf("Append at taken seq %d: got %v, want ErrFenced", taken[0].Seq, err)
	}
	wantNothingOf(t, s, taken, 5)

	// Seqs must start at the size: a gap is refused.
	g := b.Clone()
	g.Entries(t, Events(1)...)
	gap := g.Entries(t, Events(2)...)
	if err := s.Append(ctx, gap); err == nil {
		t.Fatalf("Append at seq %d to a log of 5: got nil, want an error", gap[0].Seq)
	}
	wantNothingOf(t, s, gap, 5)

	// Seqs must be dense within a batch.
	g = b.Clone()
	holey := g.Entries(t, Events(3)...)
	holey = []*trail.Entry{holey[0], holey[2]}
	if err := s.Append(ctx, holey); err == nil {
		t.Fatalf("Append of seqs %d and %d: got nil, want an error", holey[0].Seq, holey[1].Seq)
	}
	wantNothingOf(t, s, holey, 5)

	Append(t, s, b, Events(4)...)
	wantSize(t, s, 9)
}

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

// match is the reference for List's filters.
func match(f *trail.Filter, e *trail.Entry) bool {
	tg := e.TargetOrZero()
	switch {
	case f.Tenant != "" && e.Tenant != f.Tenant,
		f.Actor != "" && e.Actor.ID != f.Actor,
		f.ActorType != "" && e.Actor.Type != f.ActorType,
		!f.ActionPrefix && f.Action != "" && e.Action != f.Action,
		f.ActionPrefix && !strings.HasPrefix(e.Action, f.Action),
		f.Target != "" && tg.ID != f.Target,
		f.TargetType != "" && tg.Type != f.TargetType,
		f.Source != "" && e.Source.Service != f.Source,
		f.Outcome != "" && e.Outcome != f.Outcome,
		!f.Since.IsZero() && e.Time.Before(f.Since),
		!f.Until.IsZero() && !e.Time.Before(f.Until),
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

func testScan(t *testing.T, s trail.Store, b *Builder) {
	ctx := t.Context()
	var all []*trail.Entry
	for _, n := range []int{4, 1, 9} {
		all = append(all, Append(t, s, b, Events(n)...)...)
	}
	for _, r := range []struct{ from, to int64 }{{0, 14}, {3, 7}, {5, 6}, {5, 5}, {9, 3}, {10, 100}, {14, 20}} {
		var got []*trail.Entry
		err := s.Scan(ctx, b.Log(), r.from, r.to, func(e *trail.Entry) error {
			got = append(got, e)
			return nil
		})
		if err != nil {
			t.Fatalf("Scan(%d, %d): %v", r.from, r.to, err)
		}
		exp := all[min(r.from, 14):max(min(r.to, 14), min(r.from, 14))]
		sameIDs(t, fmt.Sprintf("Scan(%d, %d)", r.from, r.to), got, exp)
		for i, e := range got {
			sameEntry(t, "Scan", e, exp[i])
		}
	}

	// The first error from fn stops the scan and is returned.
	stop := errors.New("stop")
	calls := 0
	err := s.Scan(ctx, b.Log(), 0, 14, func(e *trail.Entry) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Fatalf("Scan with fn failing on call 2: got %v after %d calls, want the error after 2", err, calls)
	}

	err = s.Scan(ctx, "no-such-log", 0, 14, func(e *trail.Entry) error {
		return fmt.Errorf("got entry %s of another log", e.ID)
	})
	if err != nil {
		t.Fatalf("Scan of an absent log: %v", err)
	}
}

func testReadHashes(t *testing.T, s trail.Store, b *Builder) {
	ctx := t.Context()
	for _, n := range []int{1, 2, 3, 5, 8, 13, 5} {
		Append(t, s, b, Events(n)...)
	}
	const size = 37
	wantSize(t, s, size)
	mem := b.Reader()
	store := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return s.ReadHashes(ctx, b.Log(), indexes)
	})

	n := tlog.StoredHashCount(size)
	all := make([]int64, n)
	for i := range all {
		all[i] = int64(i)
	}
	exp, err := mem.ReadHashes(all)
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		got, err := s.ReadHashes(ctx, b.Log(), all[i:i+1])
		if err != nil {
			t.Fatalf("ReadHashes(%d): %v", i, err)
		}
		if len(got) != 1 || got[0] != exp[i] {
			t.Fatalf("ReadHashes(%d): got %v, want %v", i, got, exp[i])
		}
	}
	// All at once, shuffled and with repeats.
	ix := append(slices.Clone(all), 0, n-1, n/2)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(ix), func(i, j int) { ix[i], ix[j] = ix[j], ix[i] })
	got, err := s.ReadHashes(ctx, b.Log(), ix)
	if err != nil {
		t.Fatalf("ReadHashes of %d indexes: %v", len(ix), err)
	}
	if len(got) != len(ix) {
		t.Fatalf("ReadHashes of %d indexes: got %d hashes", len(ix), len(got))
	}
	for i, x := range ix {
		if got[i] != exp[x] {
			t.Fatalf("ReadHashes: index %d: got %v, want %v", x, got[i], exp[x])
		}
	}
	if got, err := s.ReadHashes(ctx, b.Log(), nil); err != nil || len(got) != 0 {
		t.Fatalf("ReadHashes of no indexes: got %v, %v; want none", got, err)
	}

	for size := int64(1); size <= 37; size++ {
		th, err := tlog.TreeHash(size, store)
		if err != nil {
			t.Fatalf("TreeHash(%d) over the store: %v", size, err)
		}
		want, _ := tlog.TreeHash(size, mem)
		if th != want {
			t.Fatalf("TreeHash(%d): got %v, want %v", size, th, want)
		}
	}
	p, err := tlog.ProveRecord(size, 17, store)
	if err != nil {
		t.Fatalf("ProveRecord over the store: %v", err)
	}
	th, _ := tlog.TreeHash(size, mem)
	err = s.Scan(ctx, b.Log(), 17, 18, func(e *trail.Entry) error {
		return tlog.CheckRecord(p, size, th, 17, tlog.RecordHash(e.Bytes))
	})
	if err != nil {
		t.Fatalf("CheckRecord of seq 17 over the stored bytes: %v", err)
	}
}

func testCheckpoint(t *testing.T, s trail.Store, b *Builder) {
	ctx := t.Context()
	Append(t, s, b, Events(12)...)
	note := func(size int64) []byte {
		h, err := tlog.TreeHash(size, b.Reader())
		if err != nil {
			t.Fatal(err)
		}
		c := trail.Checkpoint{Origin: "storetest/" + b.Log(), Size: size, Hash: h}.Marshal()
		return append(append(c, '\n'), fmt.Sprintf("— storetest %d\n", size)...)
	}
	if _, err := s.Checkpoint(ctx, b.Log(), -1); !errors.Is(err, trail.ErrNotFound) {
		t.Fatalf("Checkpoint before any: got %v, want ErrNotFound", err)
	}
	for _, size := range []int64{5, 10} {
		if err := s.AddCheckpoint(ctx, b.Log(), size, note(size)); err != nil {
			t.Fatalf("AddCheckpoint(%d): %v", size, err)
		}
	}
	// Storing the same checkpoint again is not an error.
	if err := s.AddCheckpoint(ctx, b.Log(), 5, note(5)); err != nil {
		t.Fatalf("AddCheckpoint(5) again: got %v, want nil", err)
	}
	for _, tt := range []struct {
		size int64
		want []byte
	}{{-1, note(10)}, {10, note(10)}, {5, note(5)}} {
		got, err := s.Checkpoint(ctx, b.Log(), tt.size)
		if err != nil {
			t.Fatalf("Checkpoint(%d): %v", tt.size, err)
		}
		if !bytes.Equal(got, tt.want) {
			t.Fatalf("Checkpoint(%d): got %q, want %q", tt.size, got, tt.want)
		}
	}
	for _, size := range []int64{7, 0, 12} {
		if _, err := s.Checkpoint(ctx, b.Log(), size); !errors.Is(err, trail.ErrNotFound) {
			t.Fatalf("Checkpoint(%d) where there is none: got %v, want ErrNotFound", size, err)
		}
	}
	if _, err := s.Checkpoint(ctx, "no-such-log", -1); !errors.Is(err, trail.ErrNotFound) {
		t.Fatalf("Checkpoint of an absent log: got %v, want ErrNotFound", err)
	}
}

func testLogs(t *testing.T, s trail.Store, b *Builder) {
	Append(t, s, b, Events(3)...)
	Append(t, s, b, Events(4)...)
	logs := mustLogs(t, s)
	if !slices.Contains(logs, trail.Head{Log: b.Log(), Size: 7}) {
		t.Fatalf("Logs: got %+v, want it to hold {%s 7}", logs, b.Log())
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: got %v, want nil", err)
	}
}

// wantNothingOf checks that a refused batch left nothing behind.
func wantNothingOf(t *testing.T, s trail.Store, refused []*trail.Entry, size int64) {
	t.Helper()
	ctx := t.Context()
	wantSize(t, s, size)
	var ids []string
	for _, e := range refused {
		// Ids already stored before the batch are not the batch's.
		if got, err := s.Get(ctx, e.ID); err == nil && got.Seq >= size {
			t.Fatalf("refused batch: Get(%s): got seq %d, want it not stored", e.ID, got.Seq)
		} else if err == nil && bytes.Equal(got.Bytes, e.Bytes) {
			t.Fatalf("refused batch: Get(%s) returns the refused bytes", e.ID)
		} else if err != nil && !errors.Is(err, trail.ErrNotFound) {
			t.Fatalf("refused batch: Get(%s): %v", e.ID, err)
		}
		ids = append(ids, e.ID)
	}
	m, err := s.Lookup(ctx, ids)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	for id, e := range m {
		if e.Seq >= size {
			t.Fatalf("refused batch: Lookup found %s at seq %d", id, e.Seq)
		}
	}
	err = s.Scan(ctx, refused[0].Log, size, size+int64(len(refused))+10, func(e *trail.Entry) error {
		return fmt.Errorf("refused batch: Scan found seq %d", e.Seq)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func wantSize(t *testing.T, s trail.Store, size int64) {
	t.Helper()
	h, err := s.Head(t.Context())
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if h.Size != size {
		t.Fatalf("Head: got size %d, want %d", h.Size, size)
	}
}

func mustLogs(t *testing.T, s trail.Store) []trail.Head {
	t.Helper()
	logs, err := s.Logs(t.Context())
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	return logs
}

func mustList(t *testing.T, s trail.Store, f *trail.Filter) []*trail.Entry {
	t.Helper()
	got, err := s.List(t.Context(), f)
	if err != nil {
		t.Fatalf("List(%+v): %v", *f, err)
	}
	return got
}

// sameEntry checks what every read returns: position, time, bytes, hashes.
func sameEntry(t *testing.T, op string, got, want *trail.Entry) {
	t.Helper()
	if got.ID != want.ID || got.Log != want.Log || got.Seq != want.Seq {
		t.Fatalf("%s: got %s/%s/%d, want %s/%s/%d", op, got.ID, got.Log, got.Seq, want.ID, want.Log, want.Seq)
	}
	if !got.Time.Equal(want.Time) {
		t.Fatalf("%s(%s): got time %v, want %v", op, want.ID, got.Time, want.Time)
	}
	if !bytes.Equal(got.Bytes, want.Bytes) {
		t.Fatalf("%s(%s): got bytes\n%s\nwant\n%s", op, want.ID, got.Bytes, want.Bytes)
	}
	if len(got.Hashes) == 0 || got.Hashes[0] != want.Hashes[0] {
		t.Fatalf("%s(%s): got hashes %v, want leaf hash %v first", op, want.ID, got.Hashes, want.Hashes[0])
	}
}

// sameRecord checks the full entry: digest, every stored hash and the
// parsed record.
func sameRecord(t *testing.T, op string, got, want *trail.Entry) {
	t.Helper()
	if got.Digest != want.Digest {
		t.Fatalf("%s(%s): digest differs", op, want.ID)
	}
	if !slices.Equal(got.Hashes, want.Hashes) {
		t.Fatalf("%s(%s): got hashes %v, want %v", op, want.ID, got.Hashes, want.Hashes)
	}
	if !got.ReceivedAt.Equal(want.ReceivedAt) || got.Tenant != want.Tenant || got.Actor != want.Actor ||
		got.Action != want.Action || got.TargetOrZero() != want.TargetOrZero() || got.Source != want.Source ||
		got.Outcome != want.Outcome || got.RequestID != want.RequestID || !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("%s(%s): got record %+v, want %+v", op, want.ID, got.Record, want.Record)
	}
}

func sameIDs(t *testing.T, op string, got, want []*trail.Entry) {
	t.Helper()
	g, w := ids(got), ids(want)
	if slices.Equal(g, w) {
		return
	}
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	gi, wi := "(end)", "(end)"
	if i < len(g) {
		gi = g[i]
	}
	if i < len(w) {
		wi = w[i]
	}
	t.Fatalf("%s: got %d entries, want %d; first difference at %d: got seq:id %s, want %s", op, len(g), len(w), i, gi, wi)
}

func ids(es []*trail.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%d:%s", e.Seq, e.ID)
	}
	return out
}

func keys(m map[string]*trail.Entry) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
