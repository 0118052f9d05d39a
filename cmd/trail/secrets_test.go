package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/trail-audit/trail/internal/testmongo"
	"github.com/trail-audit/trail/internal/testserver"
)

func TestLoopback(t *testing.T) {
	for _, tt := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true}, {"127.1.2.3", true}, {"::1", true},
		{"0.0.0.0", false}, {"::", false}, {"10.1.2.3", false}, {"192.168.0.1", false}, {"2001:db8::1", false},
	} {
		if got := loopback(&net.TCPAddr{IP: net.ParseIP(tt.ip), Port: 6060}); got != tt.want {
			t.Errorf("loopback(%s): got %v, want %v", tt.ip, got, tt.want)
		}
	}
}

// TestServeSecretsOffCommandLine runs serve with the MongoDB URI in a file
// and profiles on: the URI reaches the store, and no page shows the
// command line.
func TestServeSecretsOffCommandLine(t *testing.T) {
	uri := testmongo.DatabaseURI(t)
	file := filepath.Join(t.TempDir(), "store-uri")
	if err := os.WriteFile(file, []byte(uri+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := MustStartServe(t, t.TempDir(), "--store-file", file, "--debug-addr", "127.0.0.1:0")
	testserver.PostNDJSON(t, p.URL, testserver.Payments(1, 2)...)
	logs := p.stderr.String()
	if !strings.Contains(logs, `"store":"mongodb://`) {
		t.Fatalf("serve log: got %s, want the store to be MongoDB", logs)
	}
	m := regexp.MustCompile(`"msg":"trail: debug server","url":"(http://[^"]+)"`).FindStringSubmatch(logs)
	if m == nil {
		t.Fatalf("serve log: got %s, want the debug server's url", logs)
	}
	for path, want := range map[string]int{"": 200, "cmdline": 404, "goroutine?debug=1": 200} {
		resp, err := http.Get(m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /debug/pprof/%s: got %d, want %d", path, resp.StatusCode, want)
		}
		if strings.Contains(string(body), uri) || strings.Contains(string(body), file) {
			t.Errorf("GET /debug/pprof/%s shows the command line: %.300s", path, body)
		}
	}
	if strings.Contains(logs, "--debug-addr is reachable") {
		t.Errorf("serve log: got a warning for a loopback --debug-addr: %s", logs)
	}
}

func TestServeStoreFileErrors(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("hunter2-not-a-uri"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"both", []string{"--store", "mongodb://127.0.0.1:1/x", "--store-file", secret}, "not both"},
		{"not a URI", []string{"--store-file", secret}, "must hold one MongoDB URI"},
		{"missing", []string{"--store-file", filepath.Join(dir, "nope")}, "--store-file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data")}, tt.args...)
			code, _, stderr := runMain(context.Background(), "", args...)
			if code == exitOK || !strings.Contains(stderr, tt.want) {
				t.Fatalf("got exit code %d, stderr %q; want an error naming %q", code, stderr, tt.want)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Fatalf("stderr %q quotes the file's secret", stderr)
			}
		})
	}
}
