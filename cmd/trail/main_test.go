package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/testserver"
	"golang.org/x/mod/sumdb/tlog"
)

func TestMain(m *testing.M) { testserver.Main(m) }

// Process is a running `trail serve` of the built binary.
type Process struct {
	URL    string
	Data   string
	cmd    *exec.Cmd
	stderr *testserver.Buffer
	done   chan struct{}
	err    error // from Wait, once done is closed
}

// MustStartServe starts `trail serve` on a free loopback port over the data
// directory, and waits until it prints the address it listens on.
func MustStartServe(tb testing.TB, data string, args ...string) *Process {
	tb.Helper()
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--log-format", "json"}, args...)
	p := &Process{Data: data, cmd: exec.Command(testserver.TrailBinary(tb), args...), stderr: &testserver.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = testserver.ChildEnv()
	p.cmd.Stderr = p.stderr
	dieWithParent(p.cmd)
	stdout := &testserver.Buffer{}
	p.cmd.Stdout = stdout
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if tb.Failed() {
			tb.Logf("trail serve stderr:\n%s", p.stderr.String())
		}
	})
	u, err := stdout.Await("listening on ", p.done, 60*time.Second)
	if err != nil {
		tb.Fatalf("trail serve %v (exit: %v)\n%s", err, p.err, p.stderr.String())
	}
	p.URL = u
	if !strings.HasPrefix(p.URL, "http://127.0.0.1:") && !strings.HasPrefix(p.URL, "https://127.0.0.1:") {
		tb.Fatalf("got address line %q, want http://127.0.0.1:PORT (https:// with TLS)", p.URL)
	}
	return p
}

// Stop sends sig and waits for the process to exit; it returns the exit
// code (-1 if a signal ended it).
func (p *Process) Stop(tb testing.TB, sig os.Signal) int {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		tb.Fatalf("trail serve did not exit after %v\n%s", sig, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// runMain runs the program in process and returns its exit code and output.
func runMain(ctx context.Context, stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Main(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// serveFlags are the flags the issue asks `trail serve` to have.
var serveFlags = []string{
	"addr", "data", "store", "log", "origin", "key-file", "checkpoint-interval", "commit-max-events",
	"commit-max-wait", "queue-events", "max-event-bytes", "max-request-bytes", "max-batch-events",
	"lease-ttl", "log-level", "log-format", "shutdown-timeout", "debug-addr", "tls-cert", "tls-key", "store-file", "auth",
	"metrics-addr", "max-connections", "body-memory", "read-memory", "page-memory", "queue-bytes",
	"stream-memory", "stream-queue",
}

func TestServeHelpListsEveryFlag(t *testing.T) {
	cmd := exec.Command(testserver.TrailBinary(t), "serve", "-h")
	cmd.Env = testserver.ChildEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("trail serve -h: %v\n%s", err, out)
	}
	for _, f := range serveFlags {
		re := regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(f) + `\b.*\b` + envName(f) + `$`)
		if !re.Match(out) {
			t.Errorf("trail serve -h does not list --%s with %s", f, envName(f))
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// TestHelpNamesEnv checks every subcommand: each flag line in -h names the
// flag's TRAIL_ variable.
func TestHelpNamesEnv(t *testing.T) {
	for _, cmd := range []string{"serve", "push", "get", "tail", "bench"} {
		t.Run(cmd, func(t *testing.T) {
			code, _, stderr := runMain(context.Background(), "", cmd, "-h")
			if code != 0 {
				t.Fatalf("got exit code %d, want 0\n%s", code, stderr)
			}
			n := 0
			for _, line := range strings.Split(stderr, "\n") {
				name, ok := strings.CutPrefix(line, "  --")
				if !ok {
					continue
				}
				n++
				name, _, _ = strings.Cut(name, " ")
				if !strings.HasSuffix(line, " "+envName(name)) {
					t.Errorf("line %q does not end in %s", line, envName(name))
				}
			}
			if n == 0 {
				t.Fatalf("no flags listed:\n%s", stderr)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	t.Setenv("TRAIL_BATCH", "")
	for _, tt := range []struct {
		name string
		env  string // NAME=value, or ""
		args []string
		code int
		want string // in stderr
	}{
		{"no command", "", nil, exitUsage, "no command"},
		{"unknown command", "", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"unknown flag", "", []string{"serve", "--nope"}, exitUsage, "-nope"},
		{"bad store", "", []string{"serve", "--store", "postgres://x"}, exitUsage, "--store must be"},
		{"bad env value", "TRAIL_BATCH=zero", []string{"push", "{}"}, exitUsage, "TRAIL_BATCH"},
		{"bad size", "", []string{"serve", "--max-event-bytes", "lots"}, exitUsage, "64KiB"},
		{"get without ids", "", []string{"get"}, exitUsage, "give one or more record ids"},
		{"version", "", []string{"version"}, exitOK, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if k, v, ok := strings.Cut(tt.env, "="); ok {
				t.Setenv(k, v)
			}
			code, _, stderr := runMain(context.Background(), "", tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("got exit code %d and stderr %q, want %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}

func TestServeAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("TRAIL_ADDR", ln.Addr().String()) // the environment sets it
	code, _, stderr := runMain(context.Background(), "", "serve", "--data", t.TempDir())
	if code != exitError || !strings.Contains(stderr, "is in use") || !strings.Contains(stderr, "--addr") {
		t.Fatalf("got exit code %d, stderr %q; want 1 and advice to use --addr", code, stderr)
	}
}

func TestServeDataDirLocked(t *testing.T) {
	data := t.TempDir()
	MustStartServe(t, data)
	code, _, stderr := runMain(context.Background(), "", "serve", "--addr", "127.0.0.1:0", "--data", data)
	if code != exitError || !strings.Contains(stderr, "another trail server") || !strings.Contains(stderr, "--data") {
		t.Fatalf("got exit code %d, stderr %q; want 1 and advice to use --data", code, stderr)
	}
}

// TestCLI drives a real server with push, get, tail and bench, in process.
func TestCLI(t *testing.T) {
	p := MustStartServe(t, t.TempDir())
	ctx := context.Background()
	t.Setenv("TRAIL_URL", "http://127.0.0.1:1") // the flag must win

	// push: arguments, then NDJSON on stdin.
	code, out, stderr := runMain(ctx, "", "push", "--url", p.URL,
		`{"id":"cli-1","action":"user.login","actor":{"id":"u1"},"source":{"service":"auth"},"tenant":"acme"}`,
		`{"user_id":"u2","event_type":"User.Logout","src_service":"auth"}`)
	if code != 0 {
		t.Fatalf("push: exit code %d: %s", code, stderr)
	}
	receipts := decodeLines[trail.Receipt](t, out)
	if len(receipts) != 2 || receipts[0].ID != "cli-1" || receipts[0].Seq != 0 || receipts[1].Seq != 1 {
		t.Fatalf("push: got receipts %+v", receipts)
	}
	stdin := "{\"action\":\"doc.read\",\"actor\":{\"id\":\"u3\"},\"source\":{\"service\":\"docs\"}}\n\n" +
		"{\"action\":\"doc.write\",\"actor\":{\"id\":\"u3\"},\"source\":{\"service\":\"docs\"}}\n"
	code, out, stderr = runMain(ctx, stdin, "push", "--url", p.URL, "--batch", "1")
	if code != 0 {
		t.Fatalf("push stdin: exit code %d: %s", code, stderr)
	}
	receipts = append(receipts, decodeLines[trail.Receipt](t, out)...)
	if len(receipts) != 4 {
		t.Fatalf("push stdin: got %d receipts in all, want 4", len(receipts))
	}
	// An argument may be a pretty-printed object or an array of events.
	code, out, stderr = runMain(ctx, "", "push", "--url", p.URL,
		"{\n  \"action\": \"x.one\",\n  \"actor\": {\"id\": \"u\"},\n  \"source\": {\"service\": \"s\"}\n}",
		`[{"action":"x.two","actor":{"id":"u"},"source":{"service":"s"}},{"action":"x.three","actor":{"id":"u"},"source":{"service":"s"}}]`)
	if n := len(decodeLines[trail.Receipt](t, out)); code != 0 || n != 3 {
		t.Fatalf("push object and array arguments: got exit code %d and %d receipts, want 0 and 3: %s", code, n, stderr)
	}
	// A bad event fails with the server's reason and exit code 1.
	code, _, stderr = runMain(ctx, "", "push", "--url", p.URL, `{"action":"x","actor":{"id":"u"}}`)
	if code != exitError || !strings.Contains(stderr, "source.service") {
		t.Fatalf("bad push: got %d %q, want 1 naming source.service", code, stderr)
	}

	// get: verbatim bytes, which hash to the receipt's leaf hash.
	code, out, stderr = runMain(ctx, "", "get", "--url", p.URL, "cli-1")
	if code != 0 {
		t.Fatalf("get: exit code %d: %s", code, stderr)
	}
	rec := strings.TrimSuffix(out, "\n")
	if tlog.RecordHash([]byte(rec)) != receipts[0].LeafHash {
		t.Fatalf("get: bytes %q do not hash to the receipt's leaf hash", rec)
	}
	if code, _, stderr = runMain(ctx, "", "get", "--url", p.URL, "missing-id"); code != exitError || !strings.Contains(stderr, "missing-id") {
		t.Fatalf("get missing: got %d %q", code, stderr)
	}

	// tail: the last records in order, and filters.
	code, out, stderr = runMain(ctx, "", "tail", "--url", p.URL, "--last", "3", "--action", "doc.*")
	if code != 0 {
		t.Fatalf("tail: exit code %d: %s", code, stderr)
	}
	if got := ids(decodeLines[trail.Record](t, out)); fmt.Sprint(got) != fmt.Sprint([]string{receipts[2].ID, receipts[3].ID}) {
		t.Fatalf("tail --last 3 --action doc.*: got %v", got)
	}
	code, out, _ = runMain(ctx, "", "tail", "--url", p.URL, "--last", "2", "--actor", "u2")
	if got := ids(decodeLines[trail.Record](t, out)); code != 0 || fmt.Sprint(got) != fmt.Sprint([]string{receipts[1].ID}) {
		t.Fatalf("tail --last 2 --actor u2: got %d %v", code, got)
	}
	code, out, _ = runMain(ctx, "", "tail", "--url", p.URL, "--all", "--action", "doc.*", "--page", "1")
	if got := ids(decodeLines[trail.Record](t, out)); code != 0 || fmt.Sprint(got) != fmt.Sprint([]string{receipts[2].ID, receipts[3].ID}) {
		t.Fatalf("tail --all --action doc.*: got %d %v", code, got)
	}

	// bench: a short run, read back in full.
	// --server-pid: the server is a process of its own.
	benchArgs := []string{"bench", "--url", p.URL, "--events", "300", "--concurrency", "4", "--batch", "7", "--json"}
	if runtime.GOOS == "linux" {
		benchArgs = append(benchArgs, "--server-pid", strconv.Itoa(p.cmd.Process.Pid))
	}
	code, out, stderr = runMain(ctx, "", benchArgs...)
	if code != 0 {
		t.Fatalf("bench: exit code %d: %s", code, stderr)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	if rep.EventsAcked != 300 || rep.ReadBack == nil || rep.ReadBack.Found != 300 || rep.Answers["201"] != 43 {
		t.Fatalf("bench: got %+v (read-back %+v), want 300 events in 43 requests, all read back", rep, rep.ReadBack)
	}
	if g := rep.GeneratorCPU; g == nil || g.CPUSeconds <= 0 || g.Cores <= 0 || g.USPerEvent <= 0 {
		t.Fatalf("bench: got generator CPU %+v, want positive figures", g)
	}
	// /proc counts in 10 ms ticks: a short run may show none.
	if s := rep.ServerCPU; runtime.GOOS == "linux" && (s == nil || s.PID != p.cmd.Process.Pid || s.CPUSeconds < 0) {
		t.Fatalf("bench: got server CPU %+v, want a figure for pid %d", s, p.cmd.Process.Pid)
	}
}

// TestTailFollow follows a server while another client pushes, a
// backdated event included: the stream shows records in commit order.
func TestTailFollow(t *testing.T) {
	p := MustStartServe(t, t.TempDir())
	c := client.New(p.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Should the tail stop printing, the interrupt ends it (and the test).
	defer time.AfterFunc(2*time.Minute, cancel).Stop()
	var want []string
	for _, action := range []string{"older.event", "before.follow"} {
		e := testEvent(action)
		if _, err := c.Push(ctx, e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e.ID)
	}
	want = want[1:] // --last 1

	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code := Main(ctx, []string{"tail", "--url", p.URL, "--follow", "--last", "1"}, strings.NewReader(""), pw, io.Discard)
		pw.Close()
		done <- code
	}()
	var got []string
	sc := bufio.NewScanner(pr)
	next := func() bool {
		if !sc.Scan() {
			return false
		}
		var r trail.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r.ID)
		return true
	}
	// The first line shows the tail has its position; then push more.
	if next() {
		for i := range 3 {
			e := testEvent("after.follow")
			switch i {
			case 1: // backdated: a poll by time would never show it
				past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
				e.Time = &past
			case 2:
				e.Action = "last.follow"
			}
			if _, err := c.Push(ctx, e); err != nil {
				t.Fatal(err)
			}
			want = append(want, e.ID)
		}
		for len(got) < 4 && next() {
		}
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if code := <-done; code != 0 {
		t.Fatalf("tail --follow: exit code %d after interrupt, want 0", code)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tail --follow: got %v, want %v", got, want)
	}
}

func testEvent(action string) *trail.Event {
	return &trail.Event{Actor: trail.Actor{ID: "u"}, Action: action, Source: trail.Source{Service: "test"}}
}

func decodeLines[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("decode %q: %v", line, err)
		}
		out = append(out, v)
	}
	return out
}

func ids(recs []trail.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

// exitedBySignal reports whether the process was ended by a signal.
func exitedBySignal(p *Process) bool {
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}
