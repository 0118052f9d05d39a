package tail_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/ingest"
	"github.com/trail-audit/trail/sqlite"
	"github.com/trail-audit/trail/tail"
)

// env is an ingester over a real SQLite store that publishes to a hub.
type env struct {
	hub   *tail.Hub
	ing   *ingest.Ingester
	store *sqlite.Store
}

// mustOpen starts an ingester on a SQLite file in a temporary directory,
// wired to a hub bounded by cfg, and closes both when the test ends.
func mustOpen(tb testing.TB, cfg tail.Config) *env {
	tb.Helper()
	st, err := sqlite.Open(sqlite.Config{Path: filepath.Join(tb.TempDir(), "trail.db")})
	if err != nil {
		tb.Fatal(err)
	}
	hub := tail.NewHub(cfg)
	ing, err := ingest.New(context.Background(), st, ingest.Config{Committed: hub.Publish, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		hub.Close()
		ing.Close(context.Background())
		st.Close()
	})
	return &env{hub: hub, ing: ing, store: st}
}

func (e *env) source() tail.Source { return tail.Source{Reader: e.store, Head: e.ing.Head} }

func events(from, n int) []*trail.Event {
	out := make([]*trail.Event, n)
	for i := range out {
		out[i] = &trail.Event{ID: fmt.Sprintf("e%05d", from+i), Action: []string{"a.x", "b.y"}[(from+i)%2],
			Actor: trail.Actor{ID: "u"}, Source: trail.Source{Service: "s"}, Outcome: trail.OutcomeUnknown}
	}
	return out
}

// padded returns events(from, n) with pad bytes of data each.
func padded(from, n, pad int) []*trail.Event {
	out := events(from, n)
	for _, e := range out {
		e.Data = json.RawMessage(`{"pad":"` + strings.Repeat("x", pad) + `"}`)
	}
	return out
}

// collect reads st until it has n entries or fails.
func collect(tb testing.TB, st *tail.Stream, n int) []*trail.Entry {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*trail.Entry
	for len(out) < n {
		es, err := st.Next(ctx, time.Second)
		if err != nil {
			tb.Fatalf("Next after %d entries: %v", len(out), err)
		}
		out = append(out, es...)
	}
	return out
}

// TestCatchUpWhileWriting resumes from the start of a log after more was
// committed since the subscription than its queue holds: an overflow
// before the stream is live sends it back to the store rather than
// cutting it off, and it sees every matching seq once, in order, through
// the switch to live records.
func TestCatchUpWhileWriting(t *testing.T) {
	e := mustOpen(t, tail.Config{QueueBytes: 5000}) // about 25 records
	ctx := context.Background()
	submit := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i += 10 {
			if _, err := e.ing.Submit(ctx, events(i, 10)); err != nil {
				t.Fatal(err)
			}
		}
	}
	submit(0, 2000)
	f := &trail.Filter{Action: "a.x"}
	st, err := e.hub.Follow(e.source(), f, &trail.Cursor{Log: e.ing.Head().Log, Seq: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	submit(2000, 100) // overflows the queue before the first Next
	got := collect(t, st, 1049)
	for i := 2100; i < 2200; i += 10 { // live, 5 matches a commit
		submit(i, 10)
		got = append(got, collect(t, st, 5)...)
	}
	if len(got) != 1099 {
		t.Fatalf("got %d entries, want 1099", len(got))
	}
	for i, en := range got {
		if want := int64(2 + 2*i); en.Seq != want || en.Action != "a.x" {
			t.Fatalf("entry %d: got seq %d action %s, want seq %d action a.x", i, en.Seq, en.Action, want)
		}
	}
}

// TestSlowSubscriberCutOff: a live subscriber that does not read is cut
// off once its queue would hold more than QueueBytes of records, however
// few they are; it gets what was queued first, and Publish never waits
// for it.
func TestSlowSubscriberCutOff(t *testing.T) {
	e := mustOpen(t, tail.Config{QueueBytes: 100 << 10})
	st, err := e.hub.Follow(e.source(), &trail.Filter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := e.hub.Subscribers(); got != 1 {
		t.Fatalf("Subscribers: got %d, want 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if es, err := st.Next(ctx, time.Millisecond); len(es) != 0 || err != nil { // live now
		t.Fatalf("Next on an idle log: got %d entries, %v; want none", len(es), err)
	}
	for i := range 5 { // 3 records of 30 KB fit in 100 KiB, the fourth overflows
		if _, err := e.ing.Submit(context.Background(), padded(i, 1, 30000)); err != nil {
			t.Fatal(err)
		}
	}
	var got []*trail.Entry
	for {
		es, err := st.Next(ctx, time.Second)
		if errors.Is(err, tail.ErrSlow) {
			break
		} else if err != nil {
			t.Fatalf("Next: got %v, want entries and then ErrSlow", err)
		}
		got = append(got, es...)
	}
	if len(got) != 3 || got[2].Seq != 2 {
		t.Errorf("before the cut-off: got %d entries, want the 3 queued (seqs 0..2)", len(got))
	}
	if n := e.hub.Subscribers(); n != 0 {
		t.Errorf("Subscribers after the cut-off: got %d, want 0", n)
	}
}

// TestPagesInBytes: a catch-up read and a live Next each return about
// PageBytes of records, not a count of them, and the stream still sees
// every record once, in order.
func TestPagesInBytes(t *testing.T) {
	const page = 100 << 10
	e := mustOpen(t, tail.Config{PageBytes: page, QueueBytes: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 20; i += 5 {
		if _, err := e.ing.Submit(ctx, padded(i, 5, 30000)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.hub.Follow(e.source(), &trail.Filter{}, &trail.Cursor{Log: e.ing.Head().Log, Seq: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got []*trail.Entry
	check := func(what string, es []*trail.Entry) {
		t.Helper()
		var size int
		for _, en := range es[:max(len(es)-1, 0)] {
			size += len(en.Bytes)
		}
		if size >= page {
			t.Errorf("%s: got %d entries of %d bytes before the last, want under %d", what, len(es), size, page)
		}
		got = append(got, es...)
	}
	for len(got) < 19 {
		es, err := st.Next(ctx, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		check("catch-up Next", es)
	}
	for i := 20; i < 40; i += 10 { // live: commits of 10 records, 300 KB, taken a page at a time
		if _, err := e.ing.Submit(ctx, padded(i, 10, 30000)); err != nil {
			t.Fatal(err)
		}
	}
	for len(got) < 39 {
		es, err := st.Next(ctx, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		check("live Next", es)
	}
	for i, en := range got {
		if want := int64(i + 1); en.Seq != want {
			t.Fatalf("entry %d: got seq %d, want %d", i, en.Seq, want)
		}
	}
}

// TestStreamBudget: each open stream reserves QueueBytes and twice
// PageBytes of Memory; one more than fits is refused with EUNAVAILABLE,
// and Close gives its share back.
func TestStreamBudget(t *testing.T) {
	e := mustOpen(t, tail.Config{QueueBytes: 4 << 20, PageBytes: 1 << 20, Memory: 18 << 20}) // 3 streams of 6 MiB
	var open []*tail.Stream
	for i := range 3 {
		st, err := e.hub.Follow(e.source(), &trail.Filter{}, nil)
		if err != nil {
			t.Fatalf("stream %d: got %v, want it to fit the budget", i+1, err)
		}
		open = append(open, st)
	}
	_, err := e.hub.Follow(e.source(), &trail.Filter{}, nil)
	if got := trail.ErrorCode(err); got != trail.EUNAVAILABLE {
		t.Fatalf("stream 4: got %v (%s), want %s", err, got, trail.EUNAVAILABLE)
	}
	open[0].Close()
	open[0].Close() // twice gives back once
	st, err := e.hub.Follow(e.source(), &trail.Filter{}, nil)
	if err != nil {
		t.Fatalf("stream after a Close: got %v, want it to fit", err)
	}
	st.Close()
	if _, err := e.hub.Follow(e.source(), &trail.Filter{}, &trail.Cursor{Log: "other", Seq: 0}); trail.ErrorCode(err) != trail.EINVALID {
		t.Fatalf("stream of another log: got %v, want %s", err, trail.EINVALID)
	}
	st, err = e.hub.Follow(e.source(), &trail.Filter{}, nil) // a refused Follow gave its share back too
	if err != nil {
		t.Fatalf("stream after a refused one: got %v, want it to fit", err)
	}
	st.Close()
}

// TestClose ends open streams with ErrClosed and refuses new ones.
func TestClose(t *testing.T) {
	e := mustOpen(t, tail.Config{})
	st, err := e.hub.Follow(e.source(), &trail.Filter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.hub.Close()
	if _, err := st.Next(context.Background(), time.Second); !errors.Is(err, tail.ErrClosed) {
		t.Errorf("Next after Close: got %v, want ErrClosed", err)
	}
	if _, err := e.hub.Follow(e.source(), &trail.Filter{}, nil); !errors.Is(err, tail.ErrClosed) {
		t.Errorf("Follow after Close: got %v, want ErrClosed", err)
	}
}

// BenchmarkIngestSubscribers measures ingest (batches of 100 events from
// 8 producers, SQLite) with 0 and 100 live subscribers that each read
// every record, to show what the tail costs the write path.
func BenchmarkIngestSubscribers(b *testing.B) {
	for _, subs := range []int{0, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			e := mustOpen(b, tail.Config{Memory: 1 << 40}) // every subscriber fits
			ctx, cancel := context.WithCancel(context.Background())
			var readers sync.WaitGroup
			var received atomic.Int64
			for range subs {
				st, err := e.hub.Follow(e.source(), &trail.Filter{}, nil)
				if err != nil {
					b.Fatal(err)
				}
				readers.Go(func() {
					defer st.Close()
					for {
						es, err := st.Next(ctx, time.Second)
						if err != nil {
							return
						}
						received.Add(int64(len(es)))
					}
				})
			}
			const batch, producers = 100, 8
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range producers {
				wg.Go(func() {
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						if _, err := e.ing.Submit(context.Background(), events(int(n)*batch, batch)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			cancel()
			readers.Wait()
			if subs > 0 {
				b.ReportMetric(float64(received.Load())/float64(subs*b.N*batch), "delivered")
			}
		})
	}
}
