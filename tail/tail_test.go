package tail_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
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
// wired to a hub with the buffer, and closes both when the test ends.
func mustOpen(tb testing.TB, buffer int) *env {
	tb.Helper()
	st, err := sqlite.Open(sqlite.Config{Path: filepath.Join(tb.TempDir(), "trail.db")})
	if err != nil {
		tb.Fatal(err)
	}
	hub := tail.NewHub(buffer)
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
// committed since the subscription than its buffer holds: an overflow
// before the stream is live sends it back to the store rather than
// cutting it off, and it sees every matching seq once, in order, through
// the switch to live records.
func TestCatchUpWhileWriting(t *testing.T) {
	e := mustOpen(t, 50)
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
	submit(2000, 100) // overflows the buffer before the first Next
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
// off once its buffer overflows, gets what was buffered first, and Publish
// never waits for it.
func TestSlowSubscriberCutOff(t *testing.T) {
	e := mustOpen(t, 10)
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
	for i := range 5 { // 4 + 4 fit, the third batch overflows
		if _, err := e.ing.Submit(context.Background(), events(4*i, 4)); err != nil {
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
	if len(got) != 8 || got[7].Seq != 7 {
		t.Errorf("before the cut-off: got %d entries, want the 8 buffered (seqs 0..7)", len(got))
	}
	if n := e.hub.Subscribers(); n != 0 {
		t.Errorf("Subscribers after the cut-off: got %d, want 0", n)
	}
}

// TestClose ends open streams with ErrClosed and refuses new ones.
func TestClose(t *testing.T) {
	e := mustOpen(t, 0)
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
			e := mustOpen(b, 0)
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
