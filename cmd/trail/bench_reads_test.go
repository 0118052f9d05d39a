package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchReads fills a server with trail bench and measures it with
// trail bench-reads: every get and list succeeds, and list pages hold the
// filtered records.
func TestBenchReads(t *testing.T) {
	p := MustStartServe(t, t.TempDir())
	ctx := context.Background()

	code, _, stderr := runMain(ctx, "", "bench-reads", "--url", p.URL, "--duration", "200ms")
	if code == 0 || !strings.Contains(stderr, "the log is empty") {
		t.Fatalf("bench-reads on an empty log: got exit code %d, %q; want an error that the log is empty", code, stderr)
	}
	for _, tenant := range []string{"t1", "t2"} {
		code, _, stderr := runMain(ctx, "", "bench", "--url", p.URL, "--events", "400", "--batch", "50", "--concurrency", "2",
			"--tenant", tenant, "--action", "acct."+tenant, "--check=false", "--progress", "0")
		if code != 0 {
			t.Fatalf("bench: exit code %d: %s", code, stderr)
		}
	}
	for _, args := range [][]string{
		{"--mode", "get", "--samples", "50"},
		{"--mode", "list", "--tenant", "t2", "--action", "acct.*", "--window", "1h"},
	} {
		code, out, stderr := runMain(ctx, "", append([]string{"bench-reads", "--url", p.URL, "--duration", "300ms", "--concurrency", "2", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("bench-reads %v: exit code %d: %s", args, code, stderr)
		}
		var rep benchReadsReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("bench-reads --json: %v\n%s", err, out)
		}
		if rep.Requests == 0 || rep.Errors != 0 || rep.Latency.P99 <= 0 {
			t.Fatalf("bench-reads %v: got %+v, want requests, no errors and a p99", args, rep)
		}
		// A window of an hour covers the whole log: a get finds its one
		// record, and every list page is full of t2's 400 (limit 100).
		if want := map[string]float64{"get": 1, "list": 100}[rep.Mode]; rep.RecordsPer != want {
			t.Fatalf("bench-reads %v: got %.2f records per request, want %v", args, rep.RecordsPer, want)
		}
	}

	// --rate paces the clients: 100 requests/s for a second is about 100
	// requests, where back to back they send thousands. --mode path gets
	// one path, and reads no records.
	code, out, stderr := runMain(ctx, "", "bench-reads", "--url", p.URL, "--mode", "path", "--path", "/healthz",
		"--rate", "100", "--duration", "1s", "--concurrency", "4", "--json")
	if code != 0 {
		t.Fatalf("bench-reads --rate: exit code %d: %s", code, stderr)
	}
	var rep benchReadsReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench-reads --json: %v\n%s", err, out)
	}
	if rep.Requests < 90 || rep.Requests > 100 || rep.Offered != 100 || rep.Errors != 0 || rep.RecordsPer != 0 {
		t.Fatalf("bench-reads --mode path --rate 100 for 1s: got %+v, want about 100 requests, no errors, no records", rep)
	}
	for _, c := range []struct{ flag, value, want string }{
		{"--path", "healthz", "want an absolute path"},
		{"--rate", "NaN", "want requests a second"},
		{"--rate", "-1", "want requests a second"},
	} {
		code, _, stderr = runMain(ctx, "", "bench-reads", "--url", p.URL, "--mode", "path", c.flag, c.value)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Fatalf("bench-reads %s %s: exit %d, %q; want a usage error saying %q", c.flag, c.value, code, stderr, c.want)
		}
	}
}
