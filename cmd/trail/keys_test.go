package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/auth"
)

// mustRun runs the program in process and fails tb unless it exits 0.
func mustRun(tb testing.TB, args ...string) string {
	tb.Helper()
	code, out, stderr := runMain(context.Background(), "", args...)
	if code != 0 {
		tb.Fatalf("trail %s: exit code %d: %s", strings.Join(args, " "), code, stderr)
	}
	return out
}

// TestKeysBootstrap makes the first keys on the store, starts a server that
// then requires them, and manages keys over HTTP.
func TestKeysBootstrap(t *testing.T) {
	data := t.TempDir()
	admin := strings.TrimSpace(mustRun(t, "keys", "create", "--data", data, "--name", "admin", "--scopes", "admin"))
	writer := strings.TrimSpace(mustRun(t, "keys", "create", "--data", data, "--name", "billing", "--scopes", "write,read",
		"--tenant", "acme", "--source", "billing", "--expires", "90d", "--rate", "1000"))
	wid, wsecret, err := auth.ParseKey(writer)
	if _, _, aerr := auth.ParseKey(admin); err != nil || aerr != nil {
		t.Fatalf("keys create printed %q and %q, want two keys", admin, writer)
	}
	list := mustRun(t, "keys", "list", "--data", data)
	if !strings.Contains(list, wid) || !strings.Contains(list, "billing") || !strings.Contains(list, "write,read") ||
		!strings.Contains(list, "acme") || strings.Contains(list, wsecret) {
		t.Fatalf("keys list: got\n%s\nwant both keys with their bindings and no secret", list)
	}

	p := MustStartServe(t, data) // loopback, --auth auto, keys exist: on
	ev := `{"id":"k-1","action":"invoice.paid","actor":{"id":"u1"},"source":{"service":"billing"}}`
	if code, _, stderr := runMain(context.Background(), "", "push", "--url", p.URL, "--retries", "0", ev); code == 0 || !strings.Contains(stderr, "401") {
		t.Fatalf("push without a key: got exit code %d, stderr %q; want a 401 failure", code, stderr)
	}
	mustRun(t, "push", "--url", p.URL, "--token", writer, ev)
	rec := mustRun(t, "get", "--url", p.URL, "--token", writer, "k-1")
	if !strings.Contains(rec, `"key_id":"`+wid+`"`) || !strings.Contains(rec, `"tenant":"acme"`) {
		t.Fatalf("get: got %s, want key_id %s and tenant acme", rec, wid)
	}

	t.Setenv("TRAIL_TOKEN", admin)
	mustRun(t, "keys", "revoke", "--url", p.URL, wid)
	if list := mustRun(t, "keys", "list", "--url", p.URL); !strings.Contains(list, "revoked") {
		t.Fatalf("keys list over HTTP: got\n%s\nwant the revoked key", list)
	}
	time.Sleep(auth.MaxCacheTTL)
	code, _, stderr := runMain(context.Background(), "", "push", "--url", p.URL, "--retries", "0", "--token", writer, ev)
	if code == 0 || !strings.Contains(stderr, "401") {
		t.Fatalf("push with a revoked key: got exit code %d, stderr %q; want a 401 failure", code, stderr)
	}
	// The log holds the key events, written by the local operator and the admin key.
	auditor := strings.TrimSpace(mustRun(t, "keys", "create", "--url", p.URL, "--name", "auditor", "--scopes", "audit"))
	out := mustRun(t, "tail", "--url", p.URL, "--all", "--token", auditor)
	for _, action := range []string{auth.ActionKeyCreated, auth.ActionKeyRevoked} {
		if !strings.Contains(out, `"action":"`+action+`"`) {
			t.Errorf("tail: got\n%s\nwant a %s event", out, action)
		}
	}
	if strings.Contains(out, wsecret) || strings.Contains(out, strings.TrimPrefix(admin, "trail_")) {
		t.Errorf("tail: a key's secret is in the log")
	}
}

// TestServeRefusesOpenNetwork checks that --auth auto will not serve an
// address other than loopback with no keys, and names the command that
// makes the first one.
func TestServeRefusesOpenNetwork(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	code, _, stderr := runMain(context.Background(), "", "serve", "--addr", "0.0.0.0:0", "--data", data)
	want := "trail keys create --data " + data + " --name admin --scopes admin"
	if code != exitError || !strings.Contains(stderr, want) || !strings.Contains(stderr, "--auth off") {
		t.Fatalf("got exit code %d, stderr %q; want 1, %q and --auth off", code, stderr, want)
	}
}

// TestServeOpenOnLoopback checks that the quick start needs no key, and
// says that the server is open.
func TestServeOpenOnLoopback(t *testing.T) {
	p := MustStartServe(t, t.TempDir())
	mustRun(t, "push", "--url", p.URL, `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`)
	if log := p.stderr.String(); !strings.Contains(log, "trail: open") {
		t.Fatalf("serve log: got\n%s\nwant a line saying it is open", log)
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"": {}, "90d": now.AddDate(0, 0, 90), "36h": now.Add(36 * time.Hour), "2027-01-01T00:00:00Z": now.AddDate(1, 0, 0),
	} {
		got, err := parseExpiry(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseExpiry(%q): got %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"soon", "-3d", "0d", "-1h"} {
		if _, err := parseExpiry(bad, now); err == nil {
			t.Errorf("parseExpiry(%q): got nil error", bad)
		}
	}
}
