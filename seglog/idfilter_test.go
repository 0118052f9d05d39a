package seglog_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/storetest"
)

// filterPath returns the id filter file of the store in dir.
func filterPath(dir string) string { return filepath.Join(dir, "index", seglog.FilterFile) }

// waitFilter waits until s's lookups use its id filter.
func waitFilter(t *testing.T, s *seglog.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !s.IDFilterReady() {
		if time.Now().After(deadline) {
			t.Fatal("id filter: got not ready after 30s, want ready")
		}
		time.Sleep(time.Millisecond)
	}
}

// wantLookups checks that Lookup finds every one of all, and none of some
// new ids.
func wantLookups(t *testing.T, s *seglog.Store, all []*trail.Entry) {
	t.Helper()
	ids := make([]string, 0, len(all)+50)
	for _, e := range all {
		ids = append(ids, e.ID)
	}
	for range 50 {
		ids = append(ids, storetest.NewID())
	}
	m, err := s.Lookup(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if got := m[e.ID]; got == nil || got.Seq != e.Seq {
			t.Fatalf("Lookup(%s): got %v, want seq %d", e.ID, got, e.Seq)
		}
	}
	if len(m) != len(all) {
		t.Fatalf("Lookup: got %d ids found, want %d", len(m), len(all))
	}
}

// wantDuplicate checks that appending an event with a stored id fails.
func wantDuplicate(t *testing.T, s *seglog.Store, id string) {
	t.Helper()
	b := storetest.LoadBuilder(t, s, seglog.DefaultLog)
	ev := storetest.Events(1)[0]
	ev.ID = id
	entries := b.Entries(t, ev)
	if err := s.Append(t.Context(), entries); !errors.Is(err, trail.ErrDuplicateID) {
		t.Fatalf("Append of stored id %s: got %v, want %v", id, err, trail.ErrDuplicateID)
	}
}

func TestIDFilterSavedAtClose(t *testing.T) {
	dir := t.TempDir()
	all := fill(t, dir, 60)
	if _, err := os.Stat(filterPath(dir)); err != nil {
		t.Fatalf("after Close: %v; want the id filter file", err)
	}
	s := reopen(t, dir)
	if !s.IDFilterReady() {
		t.Fatal("id filter after a clean reopen: got not ready, want loaded from its file")
	}
	wantLookups(t, s, all)
	wantDuplicate(t, s, all[17].ID)
}

// A filter file older than the index (the indexer writes it now and then)
// is taken, and the ids past its mark are added from the index.
func TestIDFilterStale(t *testing.T) {
	dir := t.TempDir()
	all := fill(t, dir, 40)
	old, err := os.ReadFile(filterPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	s := reopen(t, dir)
	b := storetest.LoadBuilder(t, s, seglog.DefaultLog)
	all = append(all, storetest.Append(t, s, b, storetest.Events(30)...)...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filterPath(dir), old, 0o600); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir)
	if !s.IDFilterReady() {
		t.Fatal("id filter: got not ready, want loaded from its file")
	}
	wantLookups(t, s, all)
	wantDuplicate(t, s, all[len(all)-1].ID)
}

// A damaged filter file, or none, is rebuilt from the index; lookups are
// exact meanwhile and after.
func TestIDFilterRebuilt(t *testing.T) {
	damage := map[string]func(t *testing.T, dir string){
		"zeroed": func(t *testing.T, dir string) {
			p, err := os.ReadFile(filterPath(dir))
			if err != nil {
				t.Fatal(err)
			}
			// Bits cleared but the header kept: read as it is, it would
			// deny every stored id.
			clear(p[44 : len(p)-4]) // the first stage's words
			if err := os.WriteFile(filterPath(dir), p, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"missing": func(t *testing.T, dir string) {
			if err := os.Remove(filterPath(dir)); err != nil {
				t.Fatal(err)
			}
		},
		"index deleted": func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			all := fill(t, dir, 50)
			fn(t, dir)
			s := reopen(t, dir)
			wantLookups(t, s, all) // ready or not
			wantDuplicate(t, s, all[3].ID)
			b := storetest.LoadBuilder(t, s, seglog.DefaultLog)
			all = append(all, storetest.Append(t, s, b, storetest.Events(5)...)...)
			waitFilter(t, s)
			wantLookups(t, s, all)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = reopen(t, dir)
			if !s.IDFilterReady() {
				t.Fatal("id filter after the rebuild and a clean close: got not ready, want loaded from its file")
			}
			wantLookups(t, s, all)
		})
	}
}
