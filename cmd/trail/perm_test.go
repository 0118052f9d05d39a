package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/testserver"
)

// TestServeDataPermissions checks that serve refuses a data directory others
// can write, and that the store's files are the owner's only.
func TestServeDataPermissions(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(data, 0o777); err != nil { // not subject to the umask
		t.Fatal(err)
	}
	// Were the directory accepted, serve would run until the timeout and
	// exit 0.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, _, stderr := runMain(ctx, "", "serve", "--addr", "127.0.0.1:0", "--data", data)
	if code != exitError || !strings.Contains(stderr, "writable by group or others") || !strings.Contains(stderr, "chmod go-w "+data) {
		t.Fatalf("serve on a 0777 data directory: got exit code %d, stderr %q; want %d and advice to chmod go-w", code, stderr, exitError)
	}
	if des, err := os.ReadDir(data); err != nil || len(des) != 0 {
		t.Fatalf("the refused directory: got %d entries, %v; want it empty", len(des), err)
	}

	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	p := MustStartServe(t, data)
	testserver.PostNDJSON(t, p.URL, testserver.Payments(1, 3)...)
	for _, name := range []string{"state.db", "state.db-wal", "log/00000000000000000000.seg", "index/index.db", "index/index.db-wal", "trail.key"} {
		fi, err := os.Stat(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: got mode %o, want 600", name, got)
		}
	}
}
