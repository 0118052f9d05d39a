package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/trail-audit/trail/internal/testserver"
)

// TestProtocolErrors sends what net/http itself would answer: the mux's
// redirects and CONNECT must be problems; the few errors net/http writes
// before any handler runs stay plain text, exactly as docs/API.md lists.
func TestProtocolErrors(t *testing.T) {
	p := MustStartServe(t, t.TempDir())
	event := `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`
	for _, tt := range []struct {
		name    string
		req     string
		status  int
		problem bool   // problem+json
		ct      string // else this Content-Type, written by net/http before any handler
	}{
		{"double slash", "GET /logs//evt-1 HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, true, ""},
		{"dot dot", "GET /logs/../x HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, true, ""},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405, true, ""},
		{"header too large", "GET /logs HTTP/1.1\r\nHost: localhost\r\nX-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", 431, false, "text/plain; charset=utf-8"},
		{"duplicate Content-Length", "POST /logs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, false, "text/plain; charset=utf-8"},
		{"Transfer-Encoding gzip", "POST /logs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\n", 501, false, "text/plain; charset=utf-8"},
		{"bad Expect", "POST /logs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: bogus\r\nContent-Length: 2\r\n\r\n{}", 417, false, ""},
		{"100-continue", "POST /logs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: " +
			strconv.Itoa(len(event)) + "\r\n\r\n" + event, 201, false, "application/json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := testserver.Raw(t, p.URL, tt.req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d, want %d; body %s", resp.StatusCode, tt.status, body)
			}
			ct := resp.Header.Get("Content-Type")
			switch {
			case tt.problem:
				var pb struct {
					Status int    `json:"status"`
					Code   string `json:"code"`
				}
				if ct != "application/problem+json" || json.Unmarshal(body, &pb) != nil || pb.Status != tt.status {
					t.Fatalf("got %s %s, want a problem+json of status %d", ct, body, tt.status)
				}
				if loc := resp.Header.Get("Location"); loc != "" {
					t.Fatalf("Location: got %q, want none", loc)
				}
			case ct != tt.ct:
				// docs/API.md lists these; if net/http changes, update the
				// docs and this case.
				t.Fatalf("Content-Type: got %q, want %q as docs/API.md says", ct, tt.ct)
			}
		})
	}
	if resp, body := testserver.Raw(t, p.URL, "GET /logs HTTP/1.1\r\nHost: localhost\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /logs after the probes: got %d %s, want 200", resp.StatusCode, body)
	}
}
