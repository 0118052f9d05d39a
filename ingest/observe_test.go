package ingest_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/ingest"
)

// recordingObserver keeps what an ingester reports, as lines.
type recordingObserver struct {
	mu        sync.Mutex
	commits   []string
	failures  []string
	signedMax int64
}

func (o *recordingObserver) Committed(log string, events int, size int64, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d <= 0 {
		o.failures = append(o.failures, fmt.Sprintf("commit of %d took %v", events, d))
	}
	o.commits = append(o.commits, fmt.Sprintf("%s +%d =%d", log, events, size))
}

func (o *recordingObserver) StoreFailed(op string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failures = append(o.failures, op)
}

func (o *recordingObserver) Checkpointed(log string, size int64, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.signedMax = max(o.signedMax, size)
}

func (o *recordingObserver) snapshot() ([]string, []string, int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.commits), slices.Clone(o.failures), o.signedMax
}

// TestObserver checks what the ingester reports for metrics: each durable
// commit with its new records and the log's size (replays add nothing), a
// failed append, and the stored checkpoints.
func TestObserver(t *testing.T) {
	obs := &recordingObserver{}
	e := mustOpen(t, t.TempDir(), ingest.Config{Observer: obs})
	ctx := context.Background()
	submit := func(ids ...string) error {
		var events []*trail.Event
		for i, id := range ids {
			events = append(events, event(t, id, i))
		}
		_, err := e.ing.Submit(ctx, events)
		return err
	}
	for _, batch := range [][]string{{"a", "b", "c"}, {"d", "e"}, {"a", "b", "c"}} { // the last is a replay
		if err := submit(batch...); err != nil {
			t.Fatalf("Submit(%v): %v", batch, err)
		}
	}
	// Once the checkpoint of size 5 is stored, nothing is left to sign,
	// so the outage below fails only the append.
	deadline := time.Now().Add(10 * time.Second)
	for _, _, signed := obs.snapshot(); signed != 5; _, _, signed = obs.snapshot() {
		if time.Now().After(deadline) {
			t.Fatalf("checkpoints: got the largest stored at size %d, want 5", signed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.store.down.Store(true)
	if err := submit("f"); trail.ErrorCode(err) != trail.EUNAVAILABLE {
		t.Fatalf("Submit while the store is down: got %v, want EUNAVAILABLE", err)
	}
	e.store.down.Store(false)
	commits, failures, _ := obs.snapshot()
	if want := []string{"main +3 =3", "main +2 =5"}; !slices.Equal(commits, want) {
		t.Errorf("commits: got %q, want %q", commits, want)
	}
	if !slices.Equal(failures, []string{"append"}) {
		t.Errorf("store failures: got %q, want [append]", failures)
	}
}
