package mongo

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	trail "github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/testmongo"
	"github.com/trail-audit/trail/storetest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/mod/sumdb/tlog"
)

// testURI and NewDatabaseURI name the test server and a fresh database.
var (
	testURI        = testmongo.ServerURI
	NewDatabaseURI = testmongo.DatabaseURI
)

// MustOpenStore opens a store on uri (a fresh database if uri is "") and
// closes it at the end of the test. cfg.URI is set from uri.
func MustOpenStore(tb testing.TB, uri string, cfg Config) *Store {
	tb.Helper()
	if uri == "" {
		uri = NewDatabaseURI(tb)
	}
	cfg.URI = uri
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := Open(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) trail.Store { return MustOpenStore(t, "", Config{}) })
}

// mustHead returns the store's head, or fails tb.
func mustHead(tb testing.TB, s *Store) trail.Head {
	tb.Helper()
	h, err := s.Head(tb.Context())
	if err != nil {
		tb.Fatalf("Head: %v", err)
	}
	return h
}

// later is a clock an hour ahead, under which every lease looks expired.
func later() time.Time { return time.Now().Add(time.Hour) }

// TestReplicasClaimOwnLogs checks that live stores each claim a log of
// their own, that Close releases a log for the next store, and that every
// store reads every log.
func TestReplicasClaimOwnLogs(t *testing.T) {
	uri := NewDatabaseURI(t)
	a := MustOpenStore(t, uri, Config{})
	b := MustOpenStore(t, uri, Config{})
	ha, hb := mustHead(t, a), mustHead(t, b)
	if ha.Log != "log-1" || hb.Log != "log-2" {
		t.Fatalf("heads: got %q and %q, want log-1 and log-2", ha.Log, hb.Log)
	}
	ba, bb := storetest.NewBuilder(ha.Log), storetest.NewBuilder(hb.Log)
	ea := storetest.Append(t, a, ba, storetest.Events(3)...)
	eb := storetest.Append(t, b, bb, storetest.Events(2)...)
	for _, s := range []*Store{a, b} {
		m, err := s.Lookup(t.Context(), []string{ea[2].ID, eb[1].ID})
		if err != nil || len(m) != 2 {
			t.Fatalf("Lookup across logs: got %d entries, %v; want 2", len(m), err)
		}
		all, err := s.List(t.Context(), &trail.Filter{Limit: 10})
		if err != nil || len(all) != 5 {
			t.Fatalf("List across logs: got %d entries, %v; want 5", len(all), err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// A released log is taken over at once, with its size.
	c := MustOpenStore(t, uri, Config{})
	if h := mustHead(t, c); h != (trail.Head{Log: "log-1", Size: 3}) {
		t.Fatalf("Head after taking over a released log: got %+v, want {log-1 3}", h)
	}
	bc := storetest.LoadBuilder(t, c, "log-1")
	storetest.Append(t, c, bc, storetest.Events(2)...)
	if h := mustHead(t, c); h.Size != 5 {
		t.Fatalf("Head: got %+v, want size 5", h)
	}
}

// TestFencing checks that a store whose lease was taken over gets ErrFenced
// from Append, writes nothing, and then moves to a log of its own.
func TestFencing(t *testing.T) {
	ctx := t.Context()
	uri := NewDatabaseURI(t)
	a := MustOpenStore(t, uri, Config{LeaseTTL: time.Minute})
	ba := storetest.NewBuilder(mustHead(t, a).Log)
	storetest.Append(t, a, ba, storetest.Events(2)...)

	// b's clock makes a's lease look expired: b takes log-1 over.
	b := MustOpenStore(t, uri, Config{LeaseTTL: time.Minute, Now: later})
	if h := mustHead(t, b); h != (trail.Head{Log: "log-1", Size: 2}) {
		t.Fatalf("b: Head: got %+v, want {log-1 2}", h)
	}
	bb := storetest.LoadBuilder(t, b, "log-1")

	stale := ba.Entries(t, storetest.Events(3)...)
	if err := a.Append(ctx, stale); !errors.Is(err, trail.ErrFenced) {
		t.Fatalf("a: Append after the takeover: got %v, want ErrFenced", err)
	}
	storetest.Append(t, b, bb, storetest.Events(1)...)
	if m, err := b.Lookup(ctx, ids(stale)); err != nil || len(m) != 0 {
		t.Fatalf("Lookup of the fenced batch: got %d entries, %v; want none", len(m), err)
	}

	// a moves on to a new log, and its fenced ids are free to store there.
	h := mustHead(t, a)
	if h.Log == "log-1" || h.Size != 0 {
		t.Fatalf("a: Head after ErrFenced: got %+v, want a new empty log", h)
	}
	retry := storetest.NewBuilder(h.Log).Entries(t, events(stale)...)
	if err := a.Append(ctx, retry); err != nil {
		t.Fatalf("a: Append of the fenced events to its new log: %v", err)
	}
	wantLogs(t, b, map[string]int64{"log-1": 3, h.Log: 3})
}

// TestHeadAfterLapsedLease checks that a replica whose lease lapsed while
// it was paused (its renewer has not run since) does not report the stale
// head of a log another replica took over: Head confirms the lease first
// and moves to a new log. Ingest would otherwise compare that stale size
// with the new owner's checkpoints and refuse writes for good.
func TestHeadAfterLapsedLease(t *testing.T) {
	uri := NewDatabaseURI(t)
	var skew atomic.Int64 // how far a's clock is ahead
	aNow := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	a := MustOpenStore(t, uri, Config{LeaseTTL: time.Minute, Now: aNow})
	ba := storetest.NewBuilder(mustHead(t, a).Log)
	storetest.Append(t, a, ba, storetest.Events(2)...)

	b := MustOpenStore(t, uri, Config{LeaseTTL: time.Minute, Now: later})
	if h := mustHead(t, b); h != (trail.Head{Log: "log-1", Size: 2}) {
		t.Fatalf("b: Head: got %+v, want {log-1 2}", h)
	}
	storetest.Append(t, b, storetest.LoadBuilder(t, b, "log-1"), storetest.Events(1)...)

	// a wakes up two minutes later, before its renewer runs.
	skew.Store(int64(2 * time.Minute))
	h := mustHead(t, a)
	if h.Log == "log-1" || h.Size != 0 {
		t.Fatalf("a: Head after its lease lapsed: got %+v, want a new empty log, not log-1", h)
	}
}

// TestFencedByRecord checks the fencing token itself: a writer whose batch
// meets a record of another writer at one of its seqs gets ErrFenced, and
// its batch never becomes visible. The steps are called directly, as a
// stale writer would run them after losing a race the lease missed.
func TestFencedByRecord(t *testing.T) {
	ctx := t.Context()
	uri := NewDatabaseURI(t)
	a := MustOpenStore(t, uri, Config{LeaseTTL: time.Minute})
	ba := storetest.NewBuilder("log-1")
	storetest.Append(t, a, ba, storetest.Events(1)...)
	stale := ba.Clone()

	b := MustOpenStore(t, uri, Config{LeaseTTL: time.Minute, Now: later})
	bb := storetest.LoadBuilder(t, b, "log-1")
	won := storetest.Append(t, b, bb, storetest.Events(2)...)

	// a, unaware, writes records at seqs 1-3; 1 and 2 are b's.
	lost := &batch{log: "log-1", first: 1, tok: randomTok(), entries: stale.Entries(t, storetest.Events(3)...)}
	a.wmu.Lock()
	err := a.insertRecords(ctx, lost, lost.recordDocs())
	a.wmu.Unlock()
	if !errors.Is(err, trail.ErrFenced) {
		t.Fatalf("insert at taken seqs: got %v, want ErrFenced", err)
	}
	for _, e := range won {
		got, err := a.Get(ctx, e.ID)
		if err != nil || string(got.Bytes) != string(e.Bytes) {
			t.Fatalf("Get(%s) of the winner's record: got %v, want its bytes", e.ID, err)
		}
	}
	if m, err := a.Lookup(ctx, ids(lost.entries)); err != nil || len(m) != 0 {
		t.Fatalf("Lookup of the fenced batch: got %d entries, %v; want none", len(m), err)
	}
	if h := mustHead(t, b); h != (trail.Head{Log: "log-1", Size: 3}) {
		t.Fatalf("b: Head: got %+v, want {log-1 3}", h)
	}
	// a's record at seq 3 fences b in turn: log-1 is sealed at 3 and b
	// moves on. Nothing of a's batch ever shows.
	if err := b.Append(ctx, bb.Entries(t, storetest.Events(1)...)); !errors.Is(err, trail.ErrFenced) {
		t.Fatalf("b: Append over a's orphan record: got %v, want ErrFenced", err)
	}
	if h := mustHead(t, b); h.Log == "log-1" {
		t.Fatalf("b: Head after ErrFenced: got %+v, want a new log", h)
	}
	wantLogs(t, a, map[string]int64{"log-1": 3, "log-2": 0})
}

// TestCrashMidBatch simulates a replica that dies while writing a batch:
// it abandons the store (no release, no settling) after some of the steps
// of Append. A second store with a clock past the lease takes the log over.
// The client, which got no answer, retries with the same ids.
func TestCrashMidBatch(t *testing.T) {
	for _, tt := range []struct {
		name   string
		steps  func(t *testing.T, s *Store, b *batch) // the steps that ran before the crash
		stored bool                                   // whether the takeover completes the batch
	}{
		{"AfterReserve", func(t *testing.T, s *Store, b *batch) {
			mustReserve(t, s, b)
		}, false},
		{"AfterClaims", func(t *testing.T, s *Store, b *batch) {
			mustReserve(t, s, b)
			mustClaim(t, s, b)
		}, false},
		{"MidRecords", func(t *testing.T, s *Store, b *batch) {
			mustReserve(t, s, b)
			mustClaim(t, s, b)
			docs := b.recordDocs()
			mustInsert(t, s, b, []any{docs[0], docs[2]})
		}, false},
		{"BeforeCommit", func(t *testing.T, s *Store, b *batch) {
			mustReserve(t, s, b)
			mustClaim(t, s, b)
			mustInsert(t, s, b, b.recordDocs())
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			uri := NewDatabaseURI(t)
			a := MustOpenStore(t, uri, Config{LeaseTTL: time.Minute})
			ba := storetest.NewBuilder("log-1")
			before := storetest.Append(t, a, ba, storetest.Events(2)...)
			crashed := &batch{log: "log-1", first: 2, tok: randomTok(), entries: ba.Entries(t, storetest.Events(4)...)}
			a.wmu.Lock()
			tt.steps(t, a, crashed)
			a.wmu.Unlock()
			a.abandon()

			// Meanwhile, while a's lease lasts, a retry through another replica
			// is told to come back later (HTTP 503 with Retry-After).
			if tt.name != "AfterReserve" {
				c := MustOpenStore(t, uri, Config{})
				bc := storetest.NewBuilder(mustHead(t, c).Log)
				err := c.Append(ctx, bc.Entries(t, events(crashed.entries)...))
				if !errors.Is(err, trail.ErrUnavailable) {
					t.Fatalf("retry while the batch is in flight: got %v, want ErrUnavailable", err)
				}
				if h := mustHead(t, c); h.Size != 0 {
					t.Fatalf("retry while the batch is in flight: Head got %+v, want size 0", h)
				}
				c.Close()
			}

			// The lease expires; b takes log-1 over and settles the batch.
			b := MustOpenStore(t, uri, Config{Now: later})
			h := mustHead(t, b)
			m, err := b.Lookup(ctx, ids(crashed.entries))
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if tt.stored {
				// Completed: the retry finds every event and answers 200
				// with the original receipts.
				if h != (trail.Head{Log: "log-1", Size: 6}) {
					t.Fatalf("Head after takeover: got %+v, want {log-1 6}", h)
				}
				for _, e := range crashed.entries {
					got := m[e.ID]
					if got == nil || got.Receipt() != e.Receipt() {
						t.Fatalf("Lookup(%s) after takeover: got %v, want the original entry", e.ID, got)
					}
				}
				wantLogs(t, b, map[string]int64{"log-1": 6, "log-2": 0})
				return
			}
			// Sealed: nothing of the batch is visible, log-1 keeps its
			// committed records, and b writes to a new log.
			if len(m) != 0 {
				t.Fatalf("Lookup after takeover: got %d entries of the crashed batch, want none", len(m))
			}
			want := map[string]int64{"log-1": 2}
			if tt.name == "MidRecords" {
				if h.Log == "log-1" {
					t.Fatalf("Head after takeover: got %+v, want a new log (log-1 is sealed)", h)
				}
				want[h.Log] = 0
			} else if h != (trail.Head{Log: "log-1", Size: 2}) {
				// No record was written: log-1 itself stays usable.
				t.Fatalf("Head after takeover: got %+v, want {log-1 2} (nothing of the batch was stored)", h)
			}
			if tt.name != "AfterReserve" {
				want["log-2"] = 0 // created by the replica that was told to retry
			}
			wantLogs(t, b, want)
			for _, e := range before {
				if _, err := b.Get(ctx, e.ID); err != nil {
					t.Fatalf("Get(%s) of a committed record: %v", e.ID, err)
				}
			}
			all, err := b.List(ctx, &trail.Filter{Limit: 100})
			if err != nil || len(all) != 2 {
				t.Fatalf("List after takeover: got %d entries, %v; want the 2 committed", len(all), err)
			}
			err = b.Scan(ctx, "log-1", 0, 100, func(e *trail.Entry) error {
				if e.Seq >= 2 {
					return fmt.Errorf("Scan found seq %d of the crashed batch", e.Seq)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			// The retry with the same ids stores the events (201), once.
			bb := storetest.LoadBuilder(t, b, h.Log)
			retry := storetest.Append(t, b, bb, events(crashed.entries)...)
			m, err = b.Lookup(ctx, ids(crashed.entries))
			if err != nil || len(m) != len(retry) {
				t.Fatalf("Lookup after the retry: got %d entries, %v; want %d", len(m), err, len(retry))
			}
			for _, e := range retry {
				if got := m[e.ID]; got.Log != h.Log || got.Seq != e.Seq {
					t.Fatalf("Lookup(%s) after the retry: got %s/%d, want %s/%d", e.ID, got.Log, got.Seq, h.Log, e.Seq)
				}
			}
		})
	}
}

// TestCrashSettledByLiveReplica checks that a running replica settles the
// batch of a dead one when a retry meets its claims after the dead
// replica's lease expired, without waiting for a new replica to claim the
// log.
func TestCrashSettledByLiveReplica(t *testing.T) {
	for _, tt := range []struct {
		name     string
		complete bool // all records were stored before the crash
	}{{"BeforeCommit", true}, {"MidRecords", false}} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			uri := NewDatabaseURI(t)
			a := MustOpenStore(t, uri, Config{LeaseTTL: time.Minute})
			crashed := &batch{log: "log-1", first: 0, tok: randomTok(),
				entries: storetest.NewBuilder("log-1").Entries(t, storetest.Events(3)...)}
			a.wmu.Lock()
			mustReserve(t, a, crashed)
			mustClaim(t, a, crashed)
			docs := crashed.recordDocs()
			if !tt.complete {
				docs = docs[1:]
			}
			mustInsert(t, a, crashed, docs)
			a.wmu.Unlock()
			a.abandon()

			// c runs on its own log, with a lease long enough to outlast
			// the jump of its clock.
			var clock clock
			c := MustOpenStore(t, uri, Config{LeaseTTL: 2 * time.Hour, Now: clock.Now})
			bc := storetest.NewBuilder(mustHead(t, c).Log)
			if err := c.Append(ctx, bc.Clone().Entries(t, events(crashed.entries)...)); !errors.Is(err, trail.ErrUnavailable) {
				t.Fatalf("retry while a's lease lasts: got %v, want ErrUnavailable", err)
			}
			clock.Add(time.Hour) // a's lease expires
			err := c.Append(ctx, bc.Clone().Entries(t, events(crashed.entries)...))
			if tt.complete {
				// c completed a's batch: the retry's ids are stored, which
				// the ingest layer answers with the original receipts.
				if !errors.Is(err, trail.ErrDuplicateID) {
					t.Fatalf("retry after a's lease expired: got %v, want ErrDuplicateID (the ids are stored)", err)
				}
				m, err := c.Lookup(ctx, ids(crashed.entries))
				if err != nil || len(m) != 3 {
					t.Fatalf("Lookup: got %d entries, %v; want 3", len(m), err)
				}
				for _, e := range crashed.entries {
					if m[e.ID].Receipt() != e.Receipt() {
						t.Fatalf("Lookup(%s): got receipt %+v, want the original %+v", e.ID, m[e.ID].Receipt(), e.Receipt())
					}
				}
				wantLogs(t, c, map[string]int64{"log-1": 3, "log-2": 0})
				return
			}
			// c sealed log-1: the retry stores the events in c's log.
			if err != nil {
				t.Fatalf("retry after a's lease expired: %v", err)
			}
			wantLogs(t, c, map[string]int64{"log-1": 0, "log-2": 3})
		})
	}
}

// A clock is time.Now moved by an offset.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Add(d time.Duration) { c.off.Add(int64(d)) }

// TestInDoubtAppend checks that a batch whose Append failed without an
// answer is settled by the next Head, and that Append of the same batch
// again returns nil once it is stored.
func TestInDoubtAppend(t *testing.T) {
	ctx := t.Context()
	s := MustOpenStore(t, "", Config{})
	b := storetest.NewBuilder("log-1")
	entries := b.Entries(t, storetest.Events(3)...)
	bt := &batch{log: "log-1", first: 0, tok: randomTok(), entries: entries}
	s.wmu.Lock()
	mustReserve(t, s, bt)
	mustClaim(t, s, bt)
	s.inDoubt = bt // as if the records insert had timed out
	s.wmu.Unlock()
	if err := s.Append(ctx, entries); err != nil {
		t.Fatalf("Append of the in-doubt batch: %v", err)
	}
	if h := mustHead(t, s); h.Size != 3 {
		t.Fatalf("Head: got %+v, want size 3", h)
	}
	if m, err := s.Lookup(ctx, ids(entries)); err != nil || len(m) != 3 {
		t.Fatalf("Lookup: got %d entries, %v; want 3", len(m), err)
	}
	storetest.Append(t, s, b, storetest.Events(2)...)

	// A batch in doubt that is stored before the caller reloads its head:
	// the caller's next batch, built at the old size, gets ErrUnavailable
	// (reload and retry), not ErrFenced (someone else wrote).
	stale := b.Clone()
	doubt := b.Entries(t, storetest.Events(2)...)
	bt = &batch{log: "log-1", first: 5, tok: randomTok(), entries: doubt}
	s.wmu.Lock()
	mustReserve(t, s, bt)
	mustClaim(t, s, bt)
	s.inDoubt = bt
	s.wmu.Unlock()
	err := s.Append(ctx, stale.Entries(t, storetest.Events(1)...))
	if !errors.Is(err, trail.ErrUnavailable) || errors.Is(err, trail.ErrFenced) {
		t.Fatalf("Append at the size before the batch in doubt: got %v, want ErrUnavailable", err)
	}
	if h := mustHead(t, s); h != (trail.Head{Log: "log-1", Size: 7}) {
		t.Fatalf("Head: got %+v, want {log-1 7}", h)
	}
	storetest.Append(t, s, b, storetest.Events(1)...)

	// The same events again, rebuilt with a new receive time (as a client's
	// retry is), at the seqs of a batch in doubt: the batch in doubt is
	// stored, the rebuilt one is refused with ErrUnavailable, and a lookup
	// answers with the original entries, whose receipts the client gets.
	retry := b.Clone()
	doubt = b.Entries(t, storetest.Events(2)...)
	bt = &batch{log: "log-1", first: 8, tok: randomTok(), entries: doubt}
	s.wmu.Lock()
	mustReserve(t, s, bt)
	s.inDoubt = bt
	s.wmu.Unlock()
	rebuilt := retry.Entries(t, events(doubt)...)
	if err := s.Append(ctx, rebuilt); !errors.Is(err, trail.ErrUnavailable) {
		t.Fatalf("Append of the rebuilt batch: got %v, want ErrUnavailable", err)
	}
	m, err := s.Lookup(ctx, ids(doubt))
	if err != nil || len(m) != 2 {
		t.Fatalf("Lookup: got %d entries, %v; want 2", len(m), err)
	}
	for _, e := range doubt {
		if m[e.ID].Receipt() != e.Receipt() {
			t.Fatalf("Lookup(%s): got receipt %+v, want the original %+v", e.ID, m[e.ID].Receipt(), e.Receipt())
		}
	}
}

// TestUnavailable checks that a store whose server is gone answers
// ErrUnavailable within its timeouts.
func TestUnavailable(t *testing.T) {
	s := MustOpenStore(t, "", Config{})
	s.client.Disconnect(context.Background())
	if err := s.Ping(t.Context()); !errors.Is(err, trail.ErrUnavailable) {
		t.Fatalf("Ping of a disconnected store: got %v, want ErrUnavailable", err)
	}
	b := storetest.NewBuilder(mustHead(t, s).Log)
	if err := s.Append(t.Context(), b.Entries(t, storetest.Events(2)...)); !errors.Is(err, trail.ErrUnavailable) {
		t.Fatalf("Append to a disconnected store: got %v, want ErrUnavailable", err)
	}
	// Nothing listens on port 1.
	_, err := Open(t.Context(), Config{URI: "mongodb://127.0.0.1:1/x", ServerSelectionTimeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, trail.ErrUnavailable) {
		t.Fatalf("Open with no server: got %v, want ErrUnavailable", err)
	}
}

// TestOutage stops the MongoDB server under a store and starts it again:
// writes fail with ErrUnavailable within the timeouts while it is away,
// nothing half-written shows, and the store resumes by itself. It runs a
// FerretDB server of its own, from TRAIL_TEST_FERRETDB_BIN.
func TestOutage(t *testing.T) {
	testURI(t)
	bin := os.Getenv("TRAIL_TEST_FERRETDB_BIN")
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TRAIL_TEST_FERRETDB_BIN is not set, and CI=true")
		}
		t.Skip("TRAIL_TEST_FERRETDB_BIN is not set (scripts/test.sh sets it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "-listen", addr, "-dir", dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	server := start()

	ctx := t.Context()
	s := MustOpenStore(t, "mongodb://"+addr+"/outage", Config{OpTimeout: 2 * time.Second, ServerSelectionTimeout: time.Second})
	b := storetest.NewBuilder(mustHead(t, s).Log)
	before := storetest.Append(t, s, b, storetest.Events(5)...)

	server.Process.Kill()
	server.Wait()
	lost := b.Clone().Entries(t, storetest.Events(3)...)
	if err := s.Append(ctx, lost); !errors.Is(err, trail.ErrUnavailable) {
		t.Fatalf("Append with the server down: got %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, trail.ErrUnavailable) {
		t.Fatalf("Ping with the server down: got %v, want ErrUnavailable", err)
	}

	start()
	// The ingest layer reloads its head after a failed append; Head fails
	// until the server answers again.
	var h trail.Head
	for i := 0; ; i++ {
		if h, err = s.Head(ctx); err == nil {
			break
		}
		if !errors.Is(err, trail.ErrUnavailable) || i == 100 {
			t.Fatalf("Head after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h != (trail.Head{Log: "log-1", Size: 5}) {
		t.Fatalf("Head after the restart: got %+v, want {log-1 5}", h)
	}
	if m, err := s.Lookup(ctx, ids(lost)); err != nil || len(m) != 0 {
		t.Fatalf("Lookup of the batch refused during the outage: got %d entries, %v; want none", len(m), err)
	}
	after := storetest.Append(t, s, b, events(lost)...)
	m, err := s.Lookup(ctx, append(ids(before), ids(after)...))
	if err != nil || len(m) != 8 {
		t.Fatalf("Lookup after the restart: got %d entries, %v; want 8", len(m), err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestTamperedBytes checks that reads serve the stored bytes as they are,
// so that verification sees an edit, and that a deleted record is a gap.
func TestTamperedBytes(t *testing.T) {
	ctx := t.Context()
	s := MustOpenStore(t, "", Config{})
	b := storetest.NewBuilder("log-1")
	all := storetest.Append(t, s, b, storetest.Events(3)...)
	// Edit record 1 and delete record 2, bypassing trail.
	forged := strings.Replace(string(all[1].Bytes), "account.updated", "account.deleted", 1)
	if _, err := s.records.UpdateOne(ctx, bson.D{{Key: "_id", Value: "log-1/1"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "b", Value: forged}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.records.DeleteOne(ctx, bson.D{{Key: "_id", Value: "log-1/2"}}); err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	err := s.Scan(ctx, "log-1", 0, 3, func(e *trail.Entry) error {
		seqs = append(seqs, e.Seq)
		if e.Seq == 1 && (string(e.Bytes) != forged || e.LeafHash() == tlog.RecordHash(e.Bytes)) {
			return fmt.Errorf("seq 1: got bytes %s, want the forged bytes, whose hash differs from the stored leaf", e.Bytes)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs) != "[0 1]" {
		t.Fatalf("Scan after deleting seq 2: got seqs %v, want [0 1]", seqs)
	}
}

// TestNoRecordMutations scans the package source: no update, replace or
// delete call may name the records collection, and deletes on ids must be
// conditional on the batch token. The behavioural guard is that reads serve
// stored bytes verbatim and verification re-hashes them.
func TestNoRecordMutations(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	mutators := map[string]bool{"UpdateOne": true, "UpdateMany": true, "ReplaceOne": true, "DeleteOne": true,
		"DeleteMany": true, "FindOneAndUpdate": true, "FindOneAndReplace": true, "FindOneAndDelete": true,
		"BulkWrite": true, "UpdateByID": true, "Drop": true}
	fset := token.NewFileSet()
	scanned, calls := 0, 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		scanned++
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || !mutators[sel.Sel.Name] {
				return true
			}
			calls++
			recv := recvName(sel.X)
			switch {
			case recv == "s.logs":
			case recv == "s.ids" && strings.HasPrefix(sel.Sel.Name, "Delete"):
			case recv == "keys" && sel.Sel.Name == "UpdateOne" && name == "keys.go":
				// Revocation and last use; their filters make both one-way.
			default:
				t.Errorf("%s: %s.%s: only the logs and key documents may be updated, and only claims in ids deleted",
					fset.Position(sel.Pos()), recv, sel.Sel.Name)
			}
			return true
		})
	}
	// The store does update log documents and delete stale claims: a scan
	// that finds no such call scanned the wrong files.
	if scanned == 0 || calls == 0 {
		t.Fatalf("scanned %d source files with %d mutating calls; want at least 1 of each", scanned, calls)
	}
}

func recvName(x ast.Expr) string {
	if id, ok := x.(*ast.Ident); ok {
		return id.Name
	}
	if sel, ok := x.(*ast.SelectorExpr); ok {
		if id, ok := sel.X.(*ast.Ident); ok {
			return id.Name + "." + sel.Sel.Name
		}
	}
	return fmt.Sprintf("%T", x)
}

func mustReserve(t *testing.T, s *Store, b *batch) {
	t.Helper()
	if ok, err := s.reserve(t.Context(), b); err != nil || !ok {
		t.Fatalf("reserve: got %v, %v; want true", ok, err)
	}
}

func mustClaim(t *testing.T, s *Store, b *batch) {
	t.Helper()
	if err := s.claimIDs(t.Context(), b); err != nil {
		t.Fatalf("claim ids: %v", err)
	}
}

func mustInsert(t *testing.T, s *Store, b *batch, docs []any) {
	t.Helper()
	if err := s.insertRecords(t.Context(), b, docs); err != nil {
		t.Fatalf("insert records: %v", err)
	}
}

func wantLogs(t *testing.T, s *Store, want map[string]int64) {
	t.Helper()
	logs, err := s.Logs(t.Context())
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	got := map[string]int64{}
	for _, h := range logs {
		got[h.Log] = h.Size
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Logs: got %v, want %v", got, want)
	}
}

func ids(es []*trail.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// events returns the events of entries again, with their ids, as a client
// retry sends them.
func events(es []*trail.Entry) []*trail.Event {
	out := make([]*trail.Event, len(es))
	for i, e := range es {
		out[i] = &trail.Event{ID: e.ID, Time: &e.Time, Tenant: e.Tenant, Actor: e.Actor, Action: e.Action,
			Target: e.Target, Source: e.Source, Outcome: e.Outcome, RequestID: e.RequestID, Data: e.Data}
	}
	return out
}

// BenchmarkAppend appends batches to a fresh database and reports events/s.
// Run it against the test server:
//
//	go test ./mongo/ -run '^$' -bench Append -benchtime 20x
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s := MustOpenStore(b, "", Config{})
			bl := storetest.NewBuilder(mustHead(b, s).Log)
			evs := storetest.Events(n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				entries := bl.Entries(b, evs...)
				b.StartTimer()
				if err := s.Append(b.Context(), entries); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkLookup looks up 100 ids of a batch in a log of 10,000 records,
// as the ingest layer does before each append to find replays.
func BenchmarkLookup(b *testing.B) {
	s := MustOpenStore(b, "", Config{})
	bl := storetest.NewBuilder(mustHead(b, s).Log)
	var all []*trail.Entry
	for i := 0; i < 10; i++ {
		entries := bl.Entries(b, storetest.Events(1000)...)
		if err := s.Append(b.Context(), entries); err != nil {
			b.Fatal(err)
		}
		all = append(all, entries...)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := s.Lookup(b.Context(), ids(all[i%100*100:][:100]))
		if err != nil || len(m) != 100 {
			b.Fatalf("Lookup: got %d, %v", len(m), err)
		}
	}
}

// TestCommitUndoneByStaleUpdate puts a log's document in the state a lost
// update leaves on FerretDB, which updates by read, modify, write back: a
// lease renewal of the store's own that outlived its deadline (right after
// the server came back) wrote back the copy it had read before the writer's
// commit, or before its reserve, so the committed size is back before the
// acknowledged batch, which may be pending again. The store must restore
// that batch (all its records are stored) and go on writing its log. It
// used to take the refused reserve for a takeover, move to a new log and
// leave the batch invisible to every other replica, and pending for no one
// (TestMongoOutage failed so).
func TestCommitUndoneByStaleUpdate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		pending bool // the stale copy was read after the reserve
	}{{"PendingAgain", true}, {"BeforeReserve", false}} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			uri := NewDatabaseURI(t)
			s := MustOpenStore(t, uri, Config{LeaseTTL: time.Minute})
			b := storetest.NewBuilder(mustHead(t, s).Log)
			storetest.Append(t, s, b, storetest.Events(2)...)
			acked := storetest.Append(t, s, b, storetest.Events(3)...)
			recs, err := s.recordsAt(ctx, "log-1", 2, 3)
			if err != nil || len(recs) != 3 {
				t.Fatalf("records of the acknowledged batch: got %d, %v; want 3", len(recs), err)
			}
			var pending *pendingDoc
			if tt.pending {
				pending = &pendingDoc{First: 2, N: 3, Tok: recs[0].Tok}
			}
			_, err = s.logs.UpdateOne(ctx, bson.D{{Key: "_id", Value: "log-1"}}, bson.D{{Key: "$set", Value: bson.D{
				{Key: "committed", Value: int64(2)}, {Key: "pending", Value: pending}}}})
			if err != nil {
				t.Fatal(err)
			}

			if err := s.Append(ctx, b.Entries(t, storetest.Events(1)...)); err != nil {
				t.Errorf("Append after the stale write-back: got %v, want nil", err)
			}
			if h := mustHead(t, s); h != (trail.Head{Log: "log-1", Size: 6}) {
				t.Errorf("Head: got %+v, want {log-1 6} (the store keeps its log)", h)
			}
			d, err := s.readLog(ctx, "log-1")
			if err != nil {
				t.Fatal(err)
			}
			if d.Committed != 6 || d.Pending != nil || d.Sealed {
				t.Errorf("log-1: got committed %d, pending %+v, sealed %v; want 6, none, false", d.Committed, d.Pending, d.Sealed)
			}
			// Another replica, with no cached sizes, sees what was acknowledged.
			r := MustOpenStore(t, uri, Config{LeaseTTL: time.Minute})
			if m, err := r.Lookup(ctx, ids(acked)); err != nil || len(m) != 3 {
				t.Errorf("another replica's Lookup of the acknowledged batch: got %d entries, %v; want 3", len(m), err)
			}
		})
	}
}

// TestLeavingSettlesPending checks that a store that leaves a log it still
// owns, with a batch pending there that it no longer tracks (its commit was
// refused and settling failed, or it was fenced while MongoDB was away),
// settles the batch as the next owner would: completes it if every record
// is stored, drops it if none is, and seals the log otherwise. Nobody else
// would: the log is not expired while the store renews it, and no replica
// may ever start to take it over.
func TestLeavingSettlesPending(t *testing.T) {
	for _, tt := range []struct {
		name   string
		stored int // records of the batch stored
		want   logDoc
	}{
		{"AllStored", 3, logDoc{Committed: 3}},
		{"NoneStored", 0, logDoc{Committed: 0}},
		{"SomeStored", 2, logDoc{Committed: 0, Sealed: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := MustOpenStore(t, "", Config{LeaseTTL: time.Minute})
			bt := &batch{log: "log-1", first: 0, tok: randomTok(),
				entries: storetest.NewBuilder("log-1").Entries(t, storetest.Events(3)...)}
			s.wmu.Lock()
			mustReserve(t, s, bt)
			mustClaim(t, s, bt)
			if tt.stored > 0 {
				mustInsert(t, s, bt, bt.recordDocs()[:tt.stored])
			}
			s.fenced = true // as settle leaves it when the batch looks lost
			s.wmu.Unlock()

			if h := mustHead(t, s); h.Log == "log-1" {
				t.Fatalf("Head of a fenced store: got %+v, want a new log", h)
			}
			d, err := s.readLog(ctx, "log-1")
			if err != nil {
				t.Fatal(err)
			}
			if d.Pending != nil || d.Committed != tt.want.Committed || d.Sealed != tt.want.Sealed {
				t.Fatalf("log-1 after the store left it: got committed %d, pending %+v, sealed %v; want committed %d, no pending, sealed %v",
					d.Committed, d.Pending, d.Sealed, tt.want.Committed, tt.want.Sealed)
			}
			m, err := s.Lookup(ctx, ids(bt.entries))
			if err != nil || len(m) != int(tt.want.Committed) {
				t.Fatalf("Lookup of the batch: got %d entries, %v; want %d", len(m), err, tt.want.Committed)
			}
		})
	}
}

// TestReservationUndoneByStaleUpdate is TestCommitUndoneByStaleUpdate one
// step earlier: the stale write-back lands between the reserve and the
// commit and erases the reservation. The batch's claims and records are in
// place, so the store reserves it again and commits it in its log.
func TestReservationUndoneByStaleUpdate(t *testing.T) {
	ctx := t.Context()
	s := MustOpenStore(t, "", Config{LeaseTTL: time.Minute})
	bt := &batch{log: "log-1", first: 0, tok: randomTok(),
		entries: storetest.NewBuilder("log-1").Entries(t, storetest.Events(3)...)}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	mustReserve(t, s, bt)
	mustClaim(t, s, bt)
	mustInsert(t, s, bt, bt.recordDocs())
	_, err := s.logs.UpdateOne(ctx, bson.D{{Key: "_id", Value: "log-1"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "pending", Value: nil}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.commit(ctx, bt); err != nil {
		t.Fatalf("commit after the reservation vanished: got %v, want nil", err)
	}
	d, err := s.readLog(ctx, "log-1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Committed != 3 || d.Pending != nil || s.fenced {
		t.Fatalf("log-1: got committed %d, pending %+v, fenced %v; want 3, none, false", d.Committed, d.Pending, s.fenced)
	}
}
