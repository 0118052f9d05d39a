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
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
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
	if !errors.Is(err, trail.ErrDuplicateID) || !strings.Contains(err.Error(), stored[1].ID) {
		t.Fatalf("Append with a stored id: got %v, want trail.ErrDuplicateID naming %s", err, stored[1].ID)
	}
	wantNothingOf(t, s, refused, 3)

	// A batch that holds one new id twice fails as a whole.
	twice := b.Clone().Entries(t,
		Event(t, `{"id":"new-3","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`),
		Event(t, `{"id":"twice","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`),
		Event(t, `{"id":"twice","action":"a.c","actor":{"id":"u"},"source":{"service":"s"}}`),
	)
	if err := s.Append(ctx, twice); !errors.Is(err, trail.ErrDuplicateID) || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("Append of a batch with a repeated id: got %v, want trail.ErrDuplicateID naming twice", err)
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
