package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/trail-audit/trail/sqlite"
	"github.com/trail-audit/trail/storetest"
)

// wantPrivate fails tb unless each file exists with mode 0600.
func wantPrivate(tb testing.TB, files ...string) {
	tb.Helper()
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			tb.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			tb.Errorf("%s: got mode %o, want 600", filepath.Base(f), got)
		}
	}
}

func TestFilesArePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trail.db")
	s := mustOpen(t, sqlite.Config{Path: path})
	b := storetest.NewBuilder(sqlite.DefaultLog)
	if err := s.Append(context.Background(), b.Entries(t, storetest.Events(3)...)); err != nil {
		t.Fatal(err)
	}
	// The -wal and -shm files exist while the store is open.
	wantPrivate(t, path, path+"-wal", path+"-shm")
}

func TestOpenNarrowsOldFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trail.db")
	s, err := sqlite.Open(sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	b := storetest.NewBuilder(sqlite.DefaultLog)
	if err := s.Append(context.Background(), b.Entries(t, storetest.Events(3)...)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// As an older version left them.
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fh, err := os.OpenFile(f, os.O_CREATE|os.O_WRONLY, 0o644) // no O_TRUNC: keep the records
		if err != nil {
			t.Fatal(err)
		}
		fh.Close()
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustOpen(t, sqlite.Config{Path: path})
	wantPrivate(t, path, path+"-wal", path+"-shm")
}
