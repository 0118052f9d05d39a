package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/testserver"
	"github.com/trail-audit/trail/merkle"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/sqlite"
)

// runCLI runs trail in process and returns its exit code and all output.
func runCLI(args ...string) (int, string) {
	code, out, errOut := runMain(context.Background(), "", args...)
	return code, out + errOut
}

// TestVerifyDetectsTampering edits the SQLite store of earlier versions
// (--store sqlite) with SQL; TestVerifySegmentTampering does the same to
// the default store's segments.
func TestVerifyDetectsTampering(t *testing.T) {
	const n = 40
	for _, tt := range []struct {
		name  string
		sql   []string
		want  string
		ready string // if set, /readyz must fail naming this
	}{
		{name: "untouched", want: ""},
		{name: "edit record bytes", sql: []string{`UPDATE records SET bytes = CAST(REPLACE(CAST(bytes AS TEXT), '"amount":1700', '"amount":9999') AS BLOB) WHERE seq = 17`},
			want: "seq 17: the record was changed"},
		{name: "delete a row", sql: []string{`DELETE FROM records WHERE seq = 5`}, want: "seq 5: record is missing"},
		{name: "swap two rows", sql: []string{
			`CREATE TEMP TABLE s AS SELECT seq, bytes, hashes FROM records WHERE seq IN (8, 9)`,
			`UPDATE records SET bytes = (SELECT bytes FROM s WHERE s.seq = 17 - records.seq), hashes = (SELECT hashes FROM s WHERE s.seq = 17 - records.seq) WHERE seq IN (8, 9)`,
		}, want: "seq 8: record is missing (the next record"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := MustStartServe(t, dir, "--store", "sqlite", "--checkpoint-interval", "50ms")
			testserver.PostNDJSON(t, srv.URL, testserver.Payments(0, n)...)
			if code := srv.Stop(t, syscall.SIGTERM); code != 0 { // a final checkpoint covers all n
				t.Fatalf("trail serve exited %d", code)
			}
			testserver.TamperSQLite(t, filepath.Join(dir, "trail.db"), tt.sql...)
			srv = MustStartServe(t, dir, "--store", "sqlite", "--checkpoint-interval", "50ms")
			state := filepath.Join(t.TempDir(), "state.json")
			code, out := runCLI("verify", "--url", srv.URL, "--key-file", filepath.Join(dir, "trail.key"), "--state", state, "--wait", "1s")
			if tt.want == "" {
				if code != 0 || !strings.Contains(out, "root matches the signed checkpoint") {
					t.Fatalf("verify of an untouched log: exit %d, output:\n%s", code, out)
				}
				// The export verifies offline too, and a second run is consistent.
				exp := filepath.Join(t.TempDir(), "export.ndjson")
				if code, out := runCLI("export", "--url", srv.URL, "-o", exp); code != 0 {
					t.Fatalf("export: exit %d: %s", code, out)
				}
				if code, out := runCLI("verify", "--file", exp, "--key-file", filepath.Join(dir, "trail.key"), "--state", state); code != 0 || !strings.Contains(out, "same checkpoint") {
					t.Fatalf("verify --file: exit %d, output:\n%s", code, out)
				}
				b, _ := os.ReadFile(exp)
				edited := bytes.Replace(b, []byte(`"amount":300`), []byte(`"amount":301`), 1)
				os.WriteFile(exp, edited, 0o600)
				if code, out := runCLI("verify", "--file", exp, "--key-file", filepath.Join(dir, "trail.key"), "--state", state); code != 1 || !strings.Contains(out, "but the signed checkpoint says") {
					t.Fatalf("verify of an edited export: exit %d, output:\n%s", code, out)
				}
				return
			}
			if code != 1 || !strings.Contains(out, tt.want) {
				t.Fatalf("verify: exit %d, want 1 and %q; output:\n%s", code, tt.want, out)
			}
		})
	}
}

// TestForgedAppend appends a well-formed record, with correct Merkle
// hashes, straight into the store of a running server, as trail's own code
// would. The server refuses writes when it meets the forged seq, and no
// checkpoint will ever cover the record. The SQLite store shows the record
// to the running server at once; the segments show it at the next start.
func TestForgedAppend(t *testing.T) {
	for _, engine := range []string{"embedded", "sqlite"} {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			srv := MustStartServe(t, dir, "--store", engine, "--checkpoint-interval", "50ms")
			testserver.PostNDJSON(t, srv.URL, testserver.Payments(0, 10)...)
			testserver.WaitCheckpoint(t, srv.URL, "", 10)
			if engine == "embedded" {
				waitIndexed(t, dir, 10)
			}
			size := forge(t, dir, engine)

			// The server meets the forged seq on its next write and
			// stops writing.
			resp, err := http.Post(srv.URL+"/logs", "application/json", strings.NewReader(`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("POST after forgery: got %d, want 503", resp.StatusCode)
			}
			resp, err = http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "another process wrote to the log") {
				t.Fatalf("readyz after forgery: got %d %s", resp.StatusCode, body)
			}
			if engine == "embedded" {
				srv.Stop(t, syscall.SIGKILL)
				srv = MustStartServe(t, dir, "--store", engine, "--checkpoint-interval", "1h")
			}
			code, out := runCLI("verify", "--url", srv.URL, "--key-file", filepath.Join(dir, "trail.key"), "--state", filepath.Join(t.TempDir(), "s.json"), "--wait", "500ms")
			want := fmt.Sprintf("seq %d: stored but not covered by any signed checkpoint", size)
			if code != 1 || !strings.Contains(out, want) {
				t.Fatalf("verify: exit %d, want 1 and %q; output:\n%s", code, want, out)
			}
		})
	}
}

// waitIndexed waits until the segment store's index in dir holds n
// records. The server indexes a few milliseconds after it acknowledges;
// a forger that opened the store before then would index the same seqs
// as the server, and fail.
func waitIndexed(t *testing.T, dir string, n int64) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "index", "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mark int64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := db.QueryRow("SELECT value FROM meta WHERE key = 'watermark'").Scan(&mark); err == nil && mark >= n {
			return
		}
	}
	t.Fatalf("the server's index holds %d records after 10 s, want %d", mark, n)
}

// forge appends a record to the store in dir with trail's own code, while
// its server runs, and returns the record's seq.
func forge(t *testing.T, dir, engine string) int64 {
	t.Helper()
	var st trail.Store
	var err error
	if engine == "sqlite" {
		st, err = sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "trail.db"), Log: "main"})
	} else {
		st, err = seglog.Open(seglog.Config{Dir: dir, Log: "main"})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	h, _ := st.Head(ctx)
	e, _ := trail.ParseEvent([]byte(`{"action":"account.suspended","actor":{"id":"mallory"},"source":{"service":"admin"}}`), trail.DefaultLimits)
	p, _ := trail.Prepare(e, time.Now(), func() string { return "forged-1" })
	entry := p.Entry("main", h.Size)
	tree := merkle.NewTree(h.Size, merkle.Reader(ctx, st, "main"))
	if err := tree.Append([]*trail.Entry{entry}); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, []*trail.Entry{entry}); err != nil {
		t.Fatal(err)
	}
	return h.Size
}

// TestKeygen creates a key for a server to use, and checks that the
// verifier key it prints verifies that server's checkpoints.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "trail.key")
	code, out, errOut := runMain(context.Background(), "", "keygen", "--key-file", key, "--origin", "audit.test")
	if code != 0 || !strings.HasPrefix(out, "audit.test+") {
		t.Fatalf("keygen: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	vkey := strings.TrimSpace(out)
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if code, again, _ := runMain(context.Background(), "", "keygen", "--key-file", key); code != 0 || strings.TrimSpace(again) != vkey {
		t.Fatalf("keygen of an existing key: exit %d, got %q, want the same verifier key %q", code, again, vkey)
	}
	srv := MustStartServe(t, dir, "--key-file", key, "--origin", "audit.test", "--checkpoint-interval", "50ms")
	testserver.PostNDJSON(t, srv.URL, testserver.Payments(0, 3)...)
	testserver.WaitCheckpoint(t, srv.URL, "", 3)
	vfile := filepath.Join(t.TempDir(), "trail.vkey")
	os.WriteFile(vfile, []byte(vkey+"\n"), 0o644)
	if code, out := runCLI("verify", "--url", srv.URL, "--key-file", vfile, "--state", filepath.Join(t.TempDir(), "s.json")); code != 0 {
		t.Fatalf("verify with the printed key: exit %d\n%s", code, out)
	}
}
