package seglog_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/storetest"
)

// mustOpen opens a store with cfg and closes it when the test ends.
func mustOpen(tb testing.TB, cfg seglog.Config) *seglog.Store {
	tb.Helper()
	s, err := seglog.Open(cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Run("Default", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) trail.Store { return mustOpen(t, seglog.Config{Dir: t.TempDir()}) })
	})
	// Tiny segments roll every few records, and the indexer runs at once.
	t.Run("SmallSegments", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) trail.Store {
			return mustOpen(t, seglog.Config{Dir: t.TempDir(), SegmentBytes: 2048, IndexInterval: time.Microsecond, KeepUncompressed: true})
		})
	})
	// Tiny segments compressed, in chunks of a few frames, while the
	// tests read them.
	t.Run("SmallSegmentsCompressed", func(t *testing.T) {
		defer seglog.SetChunkBytes(seglog.SetChunkBytes(1500))
		var compressed int
		storetest.Run(t, func(t *testing.T) trail.Store {
			dir := t.TempDir()
			s := mustOpen(t, seglog.Config{Dir: dir, SegmentBytes: 2048, IndexInterval: time.Microsecond})
			t.Cleanup(func() {
				if err := s.WaitCompressed(context.Background()); err != nil {
					t.Errorf("WaitCompressed: %v", err)
				}
				segz, _ := filepath.Glob(filepath.Join(dir, "log", "*.segz"))
				compressed += len(segz)
			})
			return s
		})
		if compressed == 0 {
			t.Fatalf("got no compressed segments, want some")
		}
	})
	// Blocks of five records: List reads many blocks, full ones
	// compressed, and the indexer fills several per batch.
	t.Run("SmallBlocks", func(t *testing.T) {
		defer seglog.SetBlockSize(seglog.SetBlockSize(5))
		storetest.Run(t, func(t *testing.T) trail.Store {
			return mustOpen(t, seglog.Config{Dir: t.TempDir(), IndexInterval: time.Microsecond})
		})
	})
	// Nothing is indexed while the test runs: every read is served by
	// the tail.
	t.Run("Unindexed", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) trail.Store {
			return mustOpen(t, seglog.Config{Dir: t.TempDir(), IndexInterval: time.Hour})
		})
	})
}

func TestKeys(t *testing.T) {
	storetest.RunKeys(t, func(t *testing.T) trail.KeyStore { return mustOpen(t, seglog.Config{Dir: t.TempDir()}) })
}

// TestSecondStoreOnOneDirectory opens a second store on a directory whose
// first store has records it has not yet indexed, as a process that
// ignores trail serve's lock on --data would: the second indexes them at
// open, and the first's indexer then names the other process rather than
// failing a constraint on records.seq.
func TestSecondStoreOnOneDirectory(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, seglog.Config{Dir: dir, IndexInterval: time.Hour})
	storetest.Append(t, a, storetest.NewBuilder(seglog.DefaultLog), storetest.Events(3)...)
	other, err := seglog.Open(seglog.Config{Dir: dir})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if err := other.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	if err := a.WaitIndexed(ctx); err == nil {
		t.Fatal("the first store indexed records that another store had indexed")
	}
	if err := a.IndexErr(); err == nil || !strings.Contains(err.Error(), "another process opened this directory") {
		t.Fatalf("IndexErr: got %v, want one naming another process", err)
	}
}
