package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
	"github.com/trail-audit/trail/internal/testserver"
)

// runBenchReport runs trail bench in process against url with --json and
// returns its exit code, report and stderr.
func runBenchReport(tb testing.TB, url string, args ...string) (int, benchReport, string) {
	tb.Helper()
	args = append([]string{"bench", "--url", url, "--json", "--progress", "0"}, args...)
	code, out, stderr := runMain(context.Background(), "", args...)
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		tb.Fatalf("bench %q: got %v decoding the report (exit code %d, stderr %s), want a JSON report:\n%s", args, err, code, stderr, out)
	}
	return code, rep, stderr
}

// onPosts wraps a test server's handler: fault sees each POST /logs,
// numbered from 1, and returns true if it answered the request itself.
func onPosts(fault func(n int64, w http.ResponseWriter, r *http.Request) bool) func(http.Handler) http.Handler {
	var posts atomic.Int64
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/logs" && fault(posts.Add(1), w, r) {
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

// chunked makes every answer chunked: no Content-Length,
// and a flush after each write.
type chunked struct{ http.ResponseWriter }

func (c chunked) WriteHeader(status int) {
	c.Header().Del("Content-Length")
	c.ResponseWriter.WriteHeader(status)
}

func (c chunked) Write(b []byte) (int, error) {
	c.Header().Del("Content-Length")
	for i := 0; i < len(b); i += 1000 {
		if _, err := c.ResponseWriter.Write(b[i:min(i+1000, len(b))]); err != nil {
			return i, err
		}
		c.ResponseWriter.(http.Flusher).Flush()
	}
	return len(b), nil
}

// TestBenchHTTPClients checks that both request paths store exactly the
// events sent, single and batched, with answers framed by Content-Length
// and chunked, and count every answer.
func TestBenchHTTPClients(t *testing.T) {
	for _, framing := range []string{"length", "chunked"} {
		cfg := testserver.Config{}
		if framing == "chunked" {
			cfg.WrapHandler = func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(chunked{w}, r) })
			}
		}
		srv := testserver.MustOpen(t, cfg)
		for _, hc := range []string{"raw", "std"} {
			for _, batch := range []int{1, 40} {
				name := fmt.Sprintf("%s/%s/batch=%d", framing, hc, batch)
				code, rep, stderr := runBenchReport(t, srv.URL, "--http-client", hc, "--batch", fmt.Sprint(batch), "--events", "200", "--concurrency", "4")
				wantReq := int64((200 + batch - 1) / batch)
				if code != 0 || rep.HTTPClient != hc || rep.EventsAcked != 200 || rep.Requests != wantReq || rep.Answers["201"] != wantReq || len(rep.Answers) != 1 {
					t.Fatalf("%s: got exit code %d, report %+v; want %d events in %d requests, all 201, with the %s client: %s", name, code, rep, 200, wantReq, hc, stderr)
				}
				if rb := rep.ReadBack; rb == nil || rb.Found != 200 {
					t.Fatalf("%s: got read-back %+v, want all 200 found", name, rb)
				}
			}
		}
		// Ids the server chooses come from the receipts.
		code, rep, stderr := runBenchReport(t, srv.URL, "--ids=false", "--events", "50", "--concurrency", "2")
		if code != 0 || rep.IDs || rep.EventsAcked != 50 || rep.ReadBack == nil || rep.ReadBack.Found != 50 {
			t.Fatalf("%s/raw/--ids=false: got exit code %d, report %+v (read-back %+v), want 50 events stored and read back: %s", framing, code, rep, rep.ReadBack, stderr)
		}
	}
}

// TestBenchAnswers checks that both request paths count refusals, retries
// and connections the server closes alike: a 400 fails its request, a 503
// is retried, a connection closed without an answer is resent, and an
// answer with Connection: close is followed by a new connection.
func TestBenchAnswers(t *testing.T) {
	for _, hc := range []string{"raw", "std"} {
		var bad, busy, dropped, closing atomic.Int64
		srv := testserver.MustOpen(t, testserver.Config{WrapHandler: onPosts(func(n int64, w http.ResponseWriter, r *http.Request) bool {
			switch n % 10 {
			case 3:
				bad.Add(1)
				http.Error(w, "bad on purpose", http.StatusBadRequest)
				return true
			case 5:
				busy.Add(1)
				w.Header().Set("Retry-After", "0")
				http.Error(w, "busy on purpose", http.StatusServiceUnavailable)
				return true
			case 7:
				// Read the request first: closing a socket with unread
				// input sends a reset, not the close this stands for.
				dropped.Add(1)
				io.Copy(io.Discard, r.Body)
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return true
				}
				conn.Close()
				return true
			case 9:
				closing.Add(1)
				w.Header().Set("Connection", "close")
			}
			return false
		})})
		code, rep, stderr := runBenchReport(t, srv.URL, "--http-client", hc, "--events", "200", "--concurrency", "4")
		got := fmt.Sprintf("exit %d, acked %d, failed %d, answers %v, failures %v", code, rep.EventsAcked, rep.RequestsFailed, rep.Answers, rep.Failures)
		want := fmt.Sprintf("exit 0, acked %d, failed %d, answers map[201:%d 400:%d 503:%d connection closed:%d], failures map[400:%d]",
			200-bad.Load(), bad.Load(), 200-bad.Load(), bad.Load(), busy.Load(), dropped.Load(), bad.Load())
		if got != want || closing.Load() == 0 || dropped.Load() == 0 {
			t.Fatalf("%s: got %s; want %s: %s", hc, got, want, stderr)
		}
		if rb := rep.ReadBack; rb == nil || rb.Found != rep.EventsAcked || rb.Checked != rep.EventsAcked {
			t.Fatalf("%s: got read-back %+v, want all %d acknowledged events found", hc, rb, rep.EventsAcked)
		}
	}
}

// TestBenchToken checks the raw path against a server with authentication
// on: with a key every event is stored; without one every request is
// refused and counted as 401.
func TestBenchToken(t *testing.T) {
	srv := testserver.MustOpen(t, testserver.Config{Auth: &auth.Config{}})
	_, key, err := srv.Keys.CreateKey(t.Context(), &trail.Key{Name: "bench", Scopes: []trail.Scope{trail.ScopeWrite, trail.ScopeRead}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, rep, stderr := runBenchReport(t, srv.URL, "--token", key, "--events", "100", "--concurrency", "4")
	if code != 0 || rep.HTTPClient != "raw" || rep.EventsAcked != 100 || rep.ReadBack == nil || rep.ReadBack.Found != 100 {
		t.Fatalf("with a key: got exit code %d, report %+v (read-back %+v), want 100 events stored and read back: %s", code, rep, rep.ReadBack, stderr)
	}
	code, rep, _ = runBenchReport(t, srv.URL, "--events", "10", "--concurrency", "2")
	if code != exitError || rep.EventsAcked != 0 || rep.Answers["401"] != 10 || rep.Failures["401"] != 10 {
		t.Fatalf("without a key: got exit code %d, acked %d, answers %v, failures %v; want 1, 0 and ten 401s", code, rep.EventsAcked, rep.Answers, rep.Failures)
	}
}

// TestBenchMalformedAnswer checks that the raw path fails a request whose
// answer is not HTTP at once, and one whose body never ends at the
// timeout: the connection stays open in both cases, and neither hangs.
func TestBenchMalformedAnswer(t *testing.T) {
	for _, tt := range []struct{ answer, want string }{
		{"HELLO WORLD\r\n\r\n", "malformed HTTP answer: status line"},
		{"HTTP/1.1 201 Created\r\nContent-Length: 1000\r\n\r\nshort", "timeout"},
		{"HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip\r\n\r\n", "malformed HTTP answer: Transfer-Encoding"},
	} {
		hold := make(chan struct{})
		srv := testserver.MustOpen(t, testserver.Config{WrapHandler: onPosts(func(_ int64, w http.ResponseWriter, r *http.Request) bool {
			io.Copy(io.Discard, r.Body)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return true
			}
			io.WriteString(conn, tt.answer)
			<-hold
			conn.Close()
			return true
		})})
		start := time.Now()
		code, rep, stderr := runBenchReport(t, srv.URL, "--events", "2", "--concurrency", "1", "--timeout", "1s")
		close(hold)
		took := time.Since(start)
		var failures string
		for k, v := range rep.Failures {
			failures += fmt.Sprintf("%s: %d; ", k, v)
		}
		if code != exitError || rep.RequestsFailed != 2 || !strings.Contains(failures, tt.want) || took > 10*time.Second {
			t.Fatalf("answer %q: got exit code %d, %d failed requests (%s) in %v; want 1 and 2 failures naming %q, within seconds: %s",
				tt.answer, code, rep.RequestsFailed, failures, took, tt.want, stderr)
		}
	}
}

// TestBenchRawFraming checks the raw path's reading of framing net/http's
// server does not send by itself: an interim 100 answer, chunk extensions,
// a trailer, and Connection: close. The answers carry the server's real
// receipts, re-framed on the hijacked connection.
func TestBenchRawFraming(t *testing.T) {
	srv := testserver.MustOpen(t, testserver.Config{WrapHandler: func(h http.Handler) http.Handler {
		return onPosts(func(_ int64, w http.ResponseWriter, r *http.Request) bool {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return true
			}
			defer conn.Close()
			body := rec.Body.Bytes()
			half := len(body) / 2
			fmt.Fprintf(conn, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", rec.Code)
			fmt.Fprintf(conn, "%x;note=1\r\n%s\r\n%X\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n", half, body[:half], len(body)-half, body[half:])
			return true
		})(h)
	}})
	code, rep, stderr := runBenchReport(t, srv.URL, "--events", "60", "--batch", "3", "--concurrency", "2")
	if code != 0 || rep.EventsAcked != 60 || rep.Answers["201"] != 20 || rep.ReadBack == nil || rep.ReadBack.Found != 60 {
		t.Fatalf("got exit code %d, answers %v, acked %d, read-back %+v; want 60 events in twenty 201s, all read back: %s", code, rep.Answers, rep.EventsAcked, rep.ReadBack, stderr)
	}
}
