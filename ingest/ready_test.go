package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/ingest"
)

// Ping fails while the store is down, as Append does.
func (s *countingStore) Ping(ctx context.Context) error {
	if s.down.Load() {
		return fmt.Errorf("test: store down: %w", trail.ErrUnavailable)
	}
	return s.Store.Ping(ctx)
}

// TestReadyFollowsCommits checks that a failed commit makes the ingester
// not ready, and that it becomes ready again once the store takes writes,
// with no commit to prove it.
func TestReadyFollowsCommits(t *testing.T) {
	e := mustOpen(t, t.TempDir(), ingest.Config{})
	ctx := context.Background()
	if err := e.ing.Ready(ctx); err != nil {
		t.Fatalf("Ready at start: got %v, want nil", err)
	}
	e.store.down.Store(true)
	if _, err := e.ing.Submit(ctx, []*trail.Event{event(t, "r-1", 1)}); trail.ErrorCode(err) != trail.EUNAVAILABLE {
		t.Fatalf("Submit while down: got %v, want EUNAVAILABLE", err)
	}
	err := e.ing.Ready(ctx)
	if trail.ErrorCode(err) != trail.EUNAVAILABLE || !strings.Contains(trail.ErrorMessage(err), "the last commit failed") {
		t.Fatalf("Ready after a failed commit: got %v, want EUNAVAILABLE naming the failed commit", err)
	}
	e.store.down.Store(false)
	if err := e.ing.Ready(ctx); err != nil {
		t.Fatalf("Ready once the store takes writes: got %v, want nil", err)
	}
}
