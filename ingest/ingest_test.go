package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/ingest"
	"github.com/trail-audit/trail/internal/testmongo"
	"github.com/trail-audit/trail/internal/testserver"
	"github.com/trail-audit/trail/merkle"
	"github.com/trail-audit/trail/mongo"
	"github.com/trail-audit/trail/sqlite"
	"golang.org/x/mod/sumdb/tlog"
)

// countingStore wraps a real store to count appends and, optionally, hold
// them until released: it observes group commit and fills the queue. It
// does not replace the store.
type countingStore struct {
	trail.Store
	appends atomic.Int64
	hold    chan struct{} // if not nil, Append waits for a receive or ctx
	// down makes Append and AddCheckpoint fail as an unreachable store
	// would. This is the one injected fault: a real outage of the embedded
	// store cannot be made here (e2e.TestMongoOutage kills a real MongoDB
	// server instead).
	down atomic.Bool
}

func (s *countingStore) Append(ctx context.Context, entries []*trail.Entry) error {
	s.appends.Add(1)
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
			return fmt.Errorf("test: append: %w", ctx.Err())
		}
	}
	if s.down.Load() {
		return fmt.Errorf("test: store down: %w", trail.ErrUnavailable)
	}
	return s.Store.Append(ctx, entries)
}

func (s *countingStore) AddCheckpoint(ctx context.Context, log string, size int64, note []byte) error {
	if s.down.Load() {
		return fmt.Errorf("test: store down: %w", trail.ErrUnavailable)
	}
	return s.Store.AddCheckpoint(ctx, log, size, note)
}

type env struct {
	dir   string
	store *countingStore
	ing   *ingest.Ingester
	vkey  string
}

// mustOpen opens an ingester of log main over a SQLite store in dir. opts
// change cfg after the signer is set, just before New.
func mustOpen(tb testing.TB, dir string, cfg ingest.Config, opts ...func(*ingest.Config)) *env {
	tb.Helper()
	st, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "trail.db"), Log: "main"})
	if err != nil {
		tb.Fatal(err)
	}
	return mustStart(tb, dir, st, cfg, opts...)
}

// mustStart starts an ingester over st, signing with the key kept in dir.
func mustStart(tb testing.TB, dir string, st trail.Store, cfg ingest.Config, opts ...func(*ingest.Config)) *env {
	tb.Helper()
	signer, vkey, err := merkle.LoadOrCreateKey(filepath.Join(dir, "trail.key"), "trail.test")
	if err != nil {
		tb.Fatal(err)
	}
	cs := &countingStore{Store: st}
	cfg.Signer, cfg.Verifier, cfg.Origin = signer, vkey, "trail.test"
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 10 * time.Millisecond
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	ing, err := ingest.New(context.Background(), cs, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{dir: dir, store: cs, ing: ing, vkey: vkey}
	tb.Cleanup(func() { e.close(tb) })
	return e
}

func (e *env) close(tb testing.TB) {
	if e.ing == nil {
		return
	}
	if err := e.ing.Close(context.Background()); err != nil {
		tb.Error(err)
	}
	if err := e.store.Close(); err != nil {
		tb.Error(err)
	}
	e.ing = nil
}

func event(tb testing.TB, id string, n int) *trail.Event {
	tb.Helper()
	idField := ""
	if id != "" {
		idField = fmt.Sprintf(`"id":%q,`, id)
	}
	e, err := trail.ParseEvent([]byte(fmt.Sprintf(`{%s"action":"account.created","actor":{"id":"u%d"},"source":{"service":"test"},"data":{"n":%d}}`, idField, n, n)), trail.DefaultLimits)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func TestGroupCommitDenseSeqs(t *testing.T) {
	e := mustOpen(t, t.TempDir(), ingest.Config{})
	const clients, per = 32, 20
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				res, err := e.ing.Submit(context.Background(), []*trail.Event{event(t, "", i), event(t, "", i+1)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range res.Receipts {
					if prev, dup := seen[r.Seq]; dup {
						t.Errorf("seq %d given to %s and %s", r.Seq, prev, r.ID)
					}
					seen[r.Seq] = r.ID
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	n := int64(clients * per * 2)
	if got := e.ing.Head().Size; got != n {
		t.Fatalf("head size: got %d, want %d", got, n)
	}
	for s := int64(0); s < n; s++ {
		if _, ok := seen[s]; !ok {
			t.Fatalf("seq %d was never given", s)
		}
	}
	if got := e.store.appends.Load(); got >= clients*per {
		t.Errorf("appends: got %d for %d requests, want fewer (group commit)", got, clients*per)
	}
	t.Logf("%d requests in %d commits", clients*per, e.store.appends.Load())
}

func TestIdempotency(t *testing.T) {
	e := mustOpen(t, t.TempDir(), ingest.Config{})
	ctx := context.Background()
	first, err := e.ing.Submit(ctx, []*trail.Event{event(t, "evt-1", 1)})
	if err != nil || !first.Created {
		t.Fatalf("first: got %+v %v", first, err)
	}
	again, err := e.ing.Submit(ctx, []*trail.Event{event(t, "evt-1", 1)})
	if err != nil || again.Created || again.Receipts[0] != first.Receipts[0] {
		t.Fatalf("replay: got %+v %v, want the original receipt %+v and Created false", again, err, first.Receipts[0])
	}
	_, err = e.ing.Submit(ctx, []*trail.Event{event(t, "evt-1", 2)})
	if trail.ErrorCode(err) != trail.ECONFLICT || !strings.Contains(err.Error(), "evt-1") {
		t.Fatalf("conflict: got %v, want ECONFLICT naming the id", err)
	}
	// A batch mixing a replay and a new event stores only the new one.
	mixed, err := e.ing.Submit(ctx, []*trail.Event{event(t, "evt-1", 1), event(t, "evt-2", 2)})
	if err != nil || !mixed.Created || mixed.Receipts[0] != first.Receipts[0] || mixed.Receipts[1].Seq != 1 {
		t.Fatalf("mixed: got %+v %v", mixed, err)
	}
	// A conflicting batch stores none of its events.
	_, err = e.ing.Submit(ctx, []*trail.Event{event(t, "evt-3", 3), event(t, "evt-1", 9)})
	if trail.ErrorCode(err) != trail.ECONFLICT {
		t.Fatalf("conflicting batch: got %v", err)
	}
	if _, err := e.store.Get(ctx, "evt-3"); !errors.Is(err, trail.ErrNotFound) {
		t.Fatalf("evt-3 of a rejected batch: got %v, want not found", err)
	}
	// Concurrent submissions of one id store it once.
	var wg sync.WaitGroup
	receipts := make([]trail.Receipt, 16)
	for i := range receipts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.ing.Submit(ctx, []*trail.Event{event(t, "evt-race", 7)})
			if err != nil {
				t.Error(err)
				return
			}
			receipts[i] = res.Receipts[0]
		}()
	}
	wg.Wait()
	for _, r := range receipts[1:] {
		if r != receipts[0] {
			t.Fatalf("racing replays: got receipts %+v and %+v", r, receipts[0])
		}
	}
	if got := e.ing.Head().Size; got != 3 {
		t.Fatalf("head size: got %d, want 3", got)
	}
}

// TestRacingWriterReplans has another replica store ids between this
// writer's lookup and its append, on one MongoDB database (a SQLite file
// has one writer). The store refuses the append, and the writer's plan,
// run again, decides: the same content is a replay of the other replica's
// record, other content a conflict.
func TestRacingWriterReplans(t *testing.T) {
	dir, uri := t.TempDir(), testmongo.DatabaseURI(t)
	ctx := context.Background()
	replica := func() *env {
		st, err := mongo.Open(ctx, mongo.Config{URI: uri})
		if err != nil {
			t.Fatal(err)
		}
		return mustStart(t, dir, st, ingest.Config{})
	}
	other, e := replica(), replica()
	e.store.hold = make(chan struct{})
	type answer struct {
		res *trail.Result
		err error
	}
	answers := make(chan answer, 2)
	go func() {
		res, err := e.ing.Submit(ctx, []*trail.Event{event(t, "race-1", 1)})
		answers <- answer{res, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.store.appends.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // until the lookup is done and the append held
	}
	theirs, err := other.ing.Submit(ctx, []*trail.Event{event(t, "race-1", 1), event(t, "race-2", 2)})
	if err != nil {
		close(e.store.hold)
		t.Fatal(err)
	}
	go func() {
		res, err := e.ing.Submit(ctx, []*trail.Event{event(t, "race-2", 3)})
		answers <- answer{res, err}
	}()
	close(e.store.hold)
	for range 2 {
		a := <-answers
		switch {
		case a.err == nil:
			if a.res.Created || a.res.Receipts[0] != theirs.Receipts[0] {
				t.Errorf("replay: got %+v, want the other writer's receipt %+v and Created false", a.res, theirs.Receipts[0])
			}
		case trail.ErrorCode(a.err) != trail.ECONFLICT || !strings.Contains(a.err.Error(), "race-2"):
			t.Errorf("conflict: got %v, want ECONFLICT naming race-2", a.err)
		}
	}
	if got := e.ing.Head().Size; got != 0 {
		t.Fatalf("head size: got %d, want 0 (nothing stored)", got)
	}
	if got := e.store.appends.Load(); got != 1 {
		t.Fatalf("appends: got %d, want 1: the one the store refused; the new plan appends nothing", got)
	}
}

func TestQueueFull(t *testing.T) {
	e := mustOpen(t, t.TempDir(), ingest.Config{QueueEvents: 4})
	e.store.hold = make(chan struct{})
	ctx := context.Background()
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() { _, err := e.ing.Submit(ctx, []*trail.Event{event(t, "", i)}); errs <- err }()
	}
	// Wait until the writer holds a commit and all four are admitted: only
	// then must a fifth be refused (an admitted one would wait forever).
	deadline := time.Now().Add(10 * time.Second)
	for (e.store.appends.Load() == 0 || e.ing.Queued() < 4) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := e.ing.Queued(); got != 4 {
		close(e.store.hold)
		t.Fatalf("queued: got %d, want 4", got)
	}
	_, full := e.ing.Submit(ctx, []*trail.Event{event(t, "", 99)})
	if trail.ErrorCode(full) != trail.EUNAVAILABLE || !strings.Contains(full.Error(), "queue is full") {
		close(e.store.hold)
		t.Fatalf("got %v, want EUNAVAILABLE: queue is full", full)
	}
	close(e.store.hold)
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("queued request: got %v, want success", err)
		}
	}
}

// TestQueueBytes fills the queue by bytes while the event count is far
// from its limit: the next request is refused, so that the queue's memory
// is bounded however large its events are.
func TestQueueBytes(t *testing.T) {
	e := mustOpen(t, t.TempDir(), ingest.Config{QueueBytes: 10 << 10})
	e.store.hold = make(chan struct{})
	ctx := context.Background()
	big := func(n int) []*trail.Event {
		ev := event(t, "", n)
		ev.Data = json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q}`, n, strings.Repeat("x", 4000)))
		return []*trail.Event{ev}
	}
	errs := make(chan error, 2)
	for i := range 2 {
		go func() { _, err := e.ing.Submit(ctx, big(i)); errs <- err }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for (e.store.appends.Load() == 0 || e.ing.Queued() < 2) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	_, full := e.ing.Submit(ctx, big(99)) // 12 KB queued with it: over 10 KiB
	close(e.store.hold)
	if trail.ErrorCode(full) != trail.EUNAVAILABLE || !strings.Contains(full.Error(), "queue is full") {
		t.Fatalf("got %v, want EUNAVAILABLE: queue is full", full)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("queued request: got %v, want success", err)
		}
	}
	// Answered requests leave the queue: the same request fits again.
	if _, err := e.ing.Submit(ctx, big(99)); err != nil {
		t.Fatalf("after the queue drained: got %v, want success", err)
	}
}

// TestOutageFailsFast checks that after a commit finds the store
// unreachable, requests are refused at once for a moment instead of each
// waiting out the store's timeouts, and that writes resume by themselves.
func TestOutageFailsFast(t *testing.T) {
	e := mustOpen(t, t.TempDir(), ingest.Config{})
	ctx := context.Background()
	e.store.down.Store(true)
	if _, err := e.ing.Submit(ctx, []*trail.Event{event(t, "o-1", 1)}); trail.ErrorCode(err) != trail.EUNAVAILABLE {
		t.Fatalf("submit while down: got %v, want EUNAVAILABLE", err)
	}
	tries := e.store.appends.Load()
	_, err := e.ing.Submit(ctx, []*trail.Event{event(t, "o-2", 2)})
	if trail.ErrorCode(err) != trail.EUNAVAILABLE || !strings.Contains(err.Error(), "could not be reached a moment ago") {
		t.Fatalf("submit right after: got %v, want an immediate EUNAVAILABLE", err)
	}
	if got := e.store.appends.Load(); got != tries {
		t.Fatalf("appends: got %d, want %d (no attempt during the hold)", got, tries)
	}
	e.store.down.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := e.ing.Submit(ctx, []*trail.Event{event(t, "o-1", 1)})
		if err == nil {
			if !res.Created || res.Receipts[0].Seq != 0 {
				t.Fatalf("first stored event: got %+v, want seq 0, created", res)
			}
			break
		}
		if trail.ErrorCode(err) != trail.EUNAVAILABLE || time.Now().After(deadline) {
			t.Fatalf("after the store came back: got %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStoreTimeout checks that a store call that hangs is cut off after
// StoreTimeout and answered as an outage.
func TestStoreTimeout(t *testing.T) {
	e := mustOpen(t, t.TempDir(), ingest.Config{StoreTimeout: 100 * time.Millisecond})
	e.store.hold = make(chan struct{})
	defer close(e.store.hold)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := e.ing.Submit(ctx, []*trail.Event{event(t, "t-1", 1)})
	if trail.ErrorCode(err) != trail.EUNAVAILABLE {
		t.Fatalf("submit to a hung store: got %v, want EUNAVAILABLE", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("submit to a hung store took %v, want about the 100ms store timeout", d)
	}
}

// TestCloseDoesNotWaitOutAnOutage checks that a final checkpoint the store
// refuses is not retried after Close began: Close returns at once, and the
// stored checkpoint stays the last one that was stored.
func TestCloseDoesNotWaitOutAnOutage(t *testing.T) {
	e := mustOpen(t, t.TempDir(), ingest.Config{CheckpointInterval: time.Hour})
	ctx := context.Background()
	for i := range 2 { // the first is signed at once, the second waits an hour
		if _, err := e.ing.Submit(ctx, []*trail.Event{event(t, "", i)}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, err := e.ing.Checkpoint(ctx, ""); err != nil; _, err = e.ing.Checkpoint(ctx, "") {
			if time.Now().After(deadline) {
				t.Fatalf("first checkpoint: %v", err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	e.store.down.Store(true)
	start := time.Now()
	if err := e.ing.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("close took %v, want no retries of the final checkpoint (they took 2s)", d)
	}
	note, err := e.store.Checkpoint(ctx, "main", -1)
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := trail.ParseNote(note); err != nil || cp.Size != 1 {
		t.Fatalf("stored checkpoint: got %+v %v, want size 1", cp, err)
	}
}

func TestCloseDrainsAndSigns(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, ingest.Config{CheckpointInterval: time.Hour})
	ctx := context.Background()
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.ing.Submit(ctx, []*trail.Event{event(t, "", i)}); err == nil {
				ok.Add(1)
			} else if trail.ErrorCode(err) != trail.EUNAVAILABLE {
				t.Error(err)
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	if err := e.ing.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	size := e.ing.Head().Size
	if size != ok.Load() {
		t.Fatalf("head size %d, acknowledged %d", size, ok.Load())
	}
	note, err := e.store.Checkpoint(ctx, "main", -1)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := merkle.Open(note, e.vkey)
	if err != nil {
		t.Fatal(err)
	}
	root, err := tlog.TreeHash(size, merkle.Reader(ctx, e.store, "main"))
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != size || cp.Hash != root || cp.Origin != "trail.test/main" {
		t.Fatalf("final checkpoint: got %+v, want size %d root %v", cp, size, root)
	}
	if _, err := e.ing.Submit(ctx, []*trail.Event{event(t, "", 1)}); trail.ErrorCode(err) != trail.EUNAVAILABLE {
		t.Fatalf("submit after close: got %v, want EUNAVAILABLE", err)
	}
}

// TestStartupIntegrity tampers with the SQLite file behind trail's back and
// checks that a restarted ingester refuses writes and names the problem.
func TestStartupIntegrity(t *testing.T) {
	for _, tt := range []struct {
		name   string
		sql    string
		signed bool // tamper with a record the checkpoint covers
		want   string
	}{
		{"edit after checkpoint", `UPDATE records SET bytes = CAST(REPLACE(CAST(bytes AS TEXT), 'u4', 'u5') AS BLOB) WHERE seq = 4`, false, "seq 4: record bytes do not hash"},
		{"edit stored hash", `UPDATE records SET hashes = zeroblob(length(hashes)) WHERE seq = 1`, true, "stored hashes were changed"},
		{"delete covered rows", `DELETE FROM records WHERE seq >= 2`, true, "records were removed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			e := mustOpen(t, dir, ingest.Config{CheckpointInterval: time.Hour})
			ctx := context.Background()
			n := 3
			if !tt.signed {
				n = 6
			}
			for i := 0; i < 3; i++ {
				if _, err := e.ing.Submit(ctx, []*trail.Event{event(t, "", i)}); err != nil {
					t.Fatal(err)
				}
			}
			e.close(t) // signs a checkpoint at size 3
			if !tt.signed {
				// Append 3 more without a checkpoint: a crash before signing.
				e2 := mustOpen(t, dir, ingest.Config{CheckpointInterval: time.Hour}, ingest.NoSignOnClose)
				for i := 3; i < n; i++ {
					if _, err := e2.ing.Submit(ctx, []*trail.Event{event(t, "", i)}); err != nil {
						t.Fatal(err)
					}
				}
				e2.close(t)
			}
			testserver.TamperSQLite(t, filepath.Join(dir, "trail.db"), tt.sql)
			e3 := mustOpen(t, dir, ingest.Config{})
			err := e3.ing.Ready(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ready: got %v, want an error containing %q", err, tt.want)
			}
			if _, err := e3.ing.Submit(ctx, []*trail.Event{event(t, "", 1)}); trail.ErrorCode(err) != trail.EUNAVAILABLE {
				t.Fatalf("submit: got %v, want EUNAVAILABLE", err)
			}
		})
	}
}

func BenchmarkIngest(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		for _, tree := range []bool{true, false} {
			name := fmt.Sprintf("batch=%d/merkle=%v", batch, tree)
			b.Run(name, func(b *testing.B) {
				var opts []func(*ingest.Config)
				if !tree {
					opts = append(opts, ingest.WithoutTree)
				}
				e := mustOpen(b, b.TempDir(), ingest.Config{}, opts...)
				events := make([]*trail.Event, batch)
				for i := range events {
					events[i] = event(b, "", i)
				}
				clients := 64
				if batch >= 100 {
					clients = 8
				}
				b.ResetTimer()
				var next atomic.Int64
				var wg sync.WaitGroup
				for c := 0; c < clients; c++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							if _, err := e.ing.Submit(context.Background(), events); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
