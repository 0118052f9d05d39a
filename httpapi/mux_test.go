package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/trail-audit/trail/internal/testserver"
)

// raw sends req, a request as written on the wire, and reads the answer.
func (ts *testServer) raw(tb testing.TB, req string) *response {
	tb.Helper()
	resp, b := testserver.Raw(tb, ts.URL, req)
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestMuxAnswersAreProblems(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	ts.post(t, eventJSON("keep", 1)).wantStatus(t, http.StatusCreated)
	for _, tt := range []struct {
		line   string
		status int
		detail string // a part of the problem's detail
	}{
		{"GET /logs//keep", http.StatusBadRequest, "/logs/keep"},
		{"GET /logs/../keep", http.StatusBadRequest, "/keep"},
		{"GET /logs/./keep", http.StatusBadRequest, "/logs/keep"},
		{"GET //logs", http.StatusBadRequest, "/logs"},
		{"GET /logs/keep/", http.StatusNotFound, "/logs/keep/"},
		{"POST /logs/../logs", http.StatusBadRequest, "/logs"},
		{"CONNECT example.com:443", http.StatusMethodNotAllowed, "CONNECT"},
		{"CONNECT /logs", http.StatusMethodNotAllowed, "CONNECT"},
	} {
		t.Run(tt.line, func(t *testing.T) {
			r := ts.raw(t, tt.line+" HTTP/1.1\r\nHost: trail.test\r\nContent-Length: 0\r\n\r\n")
			p := r.problem(t, tt.status)
			if !strings.Contains(p.Detail, tt.detail) {
				t.Fatalf("detail: got %q, want it to contain %q", p.Detail, tt.detail)
			}
			if loc := r.header.Get("Location"); loc != "" {
				t.Fatalf("Location: got %q, want none (no redirects)", loc)
			}
			if tt.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Fatalf("Allow: got none, want the methods trail serves")
			}
		})
	}
	// The clean form still works.
	ts.raw(t, "GET /logs/keep HTTP/1.1\r\nHost: trail.test\r\n\r\n").wantStatus(t, http.StatusOK)
}
