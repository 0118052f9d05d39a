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
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
	"github.com/trail-audit/trail/sqlite"
)

// lineWaiter is an io.Writer that remembers everything written and lets a
// test wait for a line with a prefix.
type lineWaiter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lineWaiter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

func (w *lineWaiter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// wait returns the rest of the first line that starts with prefix.
func (w *lineWaiter) wait(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(w.String(), "\n") {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return strings.TrimSpace(rest)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no line %q within 30s; output:\n%s", prefix, w.String())
	return ""
}

// inProcess is a trail serve running inside the test, stopped gracefully.
type inProcess struct {
	URL    string
	stop   context.CancelFunc
	done   chan int
	stderr *lineWaiter
}

// serveInProcess runs trail serve with args on a free loopback port.
func serveInProcess(t *testing.T, args ...string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errw := &lineWaiter{}, &lineWaiter{}
	p := &inProcess{stop: cancel, done: make(chan int, 1), stderr: errw}
	go func() {
		p.done <- Main(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "text"}, args...), nil, out, errw)
	}()
	p.URL = out.wait(t, "listening on ")
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Stop shuts the server down gracefully and checks that it exited 0.
func (p *inProcess) Stop(t *testing.T) {
	if p.stop == nil {
		return
	}
	p.stop()
	p.stop = nil
	if code := <-p.done; code != 0 {
		t.Errorf("trail serve exited %d; stderr:\n%s", code, p.stderr.String())
	}
}

// runCLI runs trail with args and returns its exit code and output.
func runCLI(args ...string) (int, string) {
	var out bytes.Buffer
	code := Main(context.Background(), args, nil, &out, &out)
	return code, out.String()
}

func postEvents(t *testing.T, url string, n, from int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, `{"action":"payment.captured","actor":{"id":"u%d"},"source":{"service":"billing"},"data":{"amount":%d}}`+"\n", i, i*100)
	}
	resp, err := http.Post(url+"/logs", "application/x-ndjson", strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /logs: got %d %s, want 201", resp.StatusCode, body)
	}
}

// tamper runs SQL against the embedded store's file directly, as a
// database administrator would, after dropping trail's triggers.
func tamper(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "trail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		t.Fatal(err)
	}
	var triggers []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		triggers = append(triggers, name)
	}
	rows.Close()
	for _, s := range triggers {
		stmts = append([]string{"DROP TRIGGER " + s}, stmts...)
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

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
			srv := serveInProcess(t, "--data", dir, "--checkpoint-interval", "50ms")
			postEvents(t, srv.URL, n, 0)
			srv.Stop(t) // a final checkpoint covers all n
			tamper(t, dir, tt.sql...)
			srv = serveInProcess(t, "--data", dir, "--checkpoint-interval", "50ms")
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

// TestForgedAppend inserts a well-formed record, with correct Merkle
// hashes, straight into the store of a running server. No checkpoint will
// ever cover it, and the server refuses writes when it meets it.
func TestForgedAppend(t *testing.T) {
	dir := t.TempDir()
	srv := serveInProcess(t, "--data", dir, "--checkpoint-interval", "50ms")
	postEvents(t, srv.URL, 10, 0)
	time.Sleep(200 * time.Millisecond) // let a checkpoint cover the 10

	// The forger uses trail's own code to make a perfect record.
	st, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "trail.db"), Log: "main"})
	if err != nil {
		t.Fatal(err)
	}
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
	st.Close()

	code, out := runCLI("verify", "--url", srv.URL, "--key-file", filepath.Join(dir, "trail.key"), "--state", filepath.Join(t.TempDir(), "s.json"), "--wait", "500ms")
	want := fmt.Sprintf("seq %d: stored but not covered by any signed checkpoint", h.Size)
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("verify: exit %d, want 1 and %q; output:\n%s", code, want, out)
	}

	// The server meets the forged seq on its next write and stops writing.
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
}
