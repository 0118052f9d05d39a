package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/trail-audit/trail/internal/testserver"
)

// TestServeMetricsAddr runs serve with --metrics-addr: the private address
// serves the node's metrics and nothing else, and the API's address serves
// the same metrics (open here, with auth off; httpapi and metrics test the
// scope).
func TestServeMetricsAddr(t *testing.T) {
	data := t.TempDir()
	p := MustStartServe(t, data, "--metrics-addr", "127.0.0.1:0", "--auth", "off")
	testserver.PostNDJSON(t, p.URL, testserver.Payments(1, 3)...)
	logs := p.stderr.String()
	m := regexp.MustCompile(`"msg":"trail: metrics server","url":"(http://[^"]+)/metrics"`).FindStringSubmatch(logs)
	if m == nil {
		t.Fatalf("serve log: got %s, want the metrics server's url", logs)
	}
	for _, c := range []struct {
		url, want string
		status    int
	}{
		{m[1] + "/metrics", "trail_events_appended_total{log=\"main\"} 3\n", http.StatusOK},
		// The embedded store compresses its segments, and counts failures.
		{m[1] + "/metrics", "trail_segment_compress_failures_total 0\n", http.StatusOK},
		{m[1] + "/logs", "", http.StatusNotFound},
		{p.URL + "/metrics", "trail_events_appended_total{log=\"main\"} 3\n", http.StatusOK}, // auth off: open
	} {
		resp, err := http.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.want) {
			t.Errorf("GET %s: got %d %.300s, want %d with %q", c.url, resp.StatusCode, body, c.status, c.want)
		}
	}
	if strings.Contains(logs, "--metrics-addr is reachable") {
		t.Errorf("serve log: got a warning for a loopback --metrics-addr: %s", logs)
	}
}
