package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

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
		// trail.ScanRaw, through the store's RawScanner if it has one,
		// hands out the same seqs and bytes.
		var raw []string
		err = trail.ScanRaw(ctx, s, b.Log(), r.from, r.to, func(seq int64, bs []byte) error {
			raw = append(raw, fmt.Sprintf("%d %s", seq, bs))
			return nil
		})
		if err != nil {
			t.Fatalf("ScanRaw(%d, %d): %v", r.from, r.to, err)
		}
		var want []string
		for _, e := range exp {
			want = append(want, fmt.Sprintf("%d %s", e.Seq, e.Bytes))
		}
		if !slices.Equal(raw, want) {
			t.Fatalf("ScanRaw(%d, %d): got %q, want %q", r.from, r.to, raw, want)
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
