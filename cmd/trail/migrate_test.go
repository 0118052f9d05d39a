package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/testserver"
)

// TestMigrate starts on a directory of the SQLite layout: serve refuses it
// and names the command; trail migrate converts it; serve then opens it,
// every record reads back as before, and trail verify passes against the
// checkpoints that the old store signed.
func TestMigrate(t *testing.T) {
	dir := t.TempDir()
	srv := MustStartServe(t, dir, "--store", "sqlite", "--checkpoint-interval", "50ms")
	testserver.PostNDJSON(t, srv.URL, testserver.Payments(0, 120)...)
	c := client.New(srv.URL)
	before := checkDense(t, c)
	if code := srv.Stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("trail serve --store sqlite exited %d", code)
	}

	code, out := runCLI("serve", "--addr", "127.0.0.1:0", "--data", dir)
	want := "trail migrate --data " + dir
	if code != exitError || !strings.Contains(out, want) {
		t.Fatalf("serve on the SQLite layout: exit %d, output %q; want %d and %q", code, out, exitError, want)
	}

	if code, out := runCLI("migrate", "--data", dir); code != 0 || !strings.Contains(out, "migrated 120 records") {
		t.Fatalf("migrate: exit %d, output:\n%s", code, out)
	}
	if code, out := runCLI("migrate", "--data", dir); code != exitError || !strings.Contains(out, "nothing to migrate") {
		t.Fatalf("migrate again: exit %d, output %q; want %d and \"nothing to migrate\"", code, out, exitError)
	}

	srv = MustStartServe(t, dir, "--checkpoint-interval", "50ms")
	c = client.New(srv.URL)
	after := checkDense(t, c)
	if len(after) != len(before) {
		t.Fatalf("after migrating: got %d records, want %d", len(after), len(before))
	}
	for id := range before {
		if !after[id] {
			t.Fatalf("record %s is missing after migrating", id)
		}
	}
	code, out = runCLI("verify", "--url", srv.URL, "--key-file", filepath.Join(dir, "trail.key"), "--state", filepath.Join(t.TempDir(), "s.json"), "--wait", "1s")
	if code != 0 || !strings.Contains(out, "root matches the signed checkpoint") {
		t.Fatalf("verify after migrating: exit %d, output:\n%s", code, out)
	}
	// The server keeps writing where the old store stopped.
	testserver.PostNDJSON(t, srv.URL, testserver.Payments(120, 5)...)
	if got := checkDense(t, c); len(got) != 125 {
		t.Fatalf("after more writes: got %d records, want 125", len(got))
	}
}
