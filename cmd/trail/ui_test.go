package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestServeUIFlags checks that trail serve wires the viewer's flags: it is
// on by default with frames refused, --ui-frame-ancestors lets a site frame
// it, and --ui=false turns it off.
func TestServeUIFlags(t *testing.T) {
	for _, tt := range []struct {
		args     []string
		status   int
		ancestor string
	}{
		{nil, http.StatusOK, "frame-ancestors 'none'"},
		{[]string{"--ui-frame-ancestors", "https://app.example.com"}, http.StatusOK, "frame-ancestors https://app.example.com"},
		{[]string{"--ui=false"}, http.StatusNotFound, ""},
	} {
		srv := MustStartServe(t, t.TempDir(), tt.args...)
		resp, err := http.Get(srv.URL + "/ui/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%v: GET /ui/: got %d, want %d", tt.args, resp.StatusCode, tt.status)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, tt.ancestor) {
			t.Errorf("%v: Content-Security-Policy: got %q, want it to end in %q", tt.args, csp, tt.ancestor)
		}
	}
}
