package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
	"github.com/trail-audit/trail/internal/testserver"
)

// scrape gets baseURL/metrics with the Authorization header h ("" for
// none), fails tb unless the answer is 200, and returns the families.
func scrape(tb testing.TB, baseURL, h string) map[string]*dto.MetricFamily {
	tb.Helper()
	resp := send(tb, "GET", baseURL+"/metrics", h, "")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("GET /metrics: got %d %s, want 200", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("GET /metrics: parse: %v", err)
	}
	return fams
}

// send sends a request and returns the answer, body unread.
func send(tb testing.TB, method, url, h, body string) *http.Response {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if h != "" {
		req.Header.Set("Authorization", h)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

// do sends a request, reads the answer and fails tb unless its status is
// want.
func do(tb testing.TB, method, url, h, body string, want int) {
	tb.Helper()
	resp := send(tb, method, url, h, body)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		tb.Fatalf("%s %s: got %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
}

// value returns the value of the sample of family name whose labels
// include labels (name=value pairs); a histogram gives its sample count.
// It fails tb if there is no such sample.
func value(tb testing.TB, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	tb.Helper()
	f, ok := fams[name]
	if !ok {
		tb.Fatalf("metric %s: got none, want it exposed", name)
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	tb.Fatalf("metric %s%v: got no such sample, want one", name, labels)
	return 0
}

// batch is a JSON array of n events with ids from "e<from>" on.
func batch(from, n int) string {
	events := make([]string, n)
	for i := range events {
		events[i] = fmt.Sprintf(`{"id":"e%d","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`, from+i)
	}
	return "[" + strings.Join(events, ",") + "]"
}

// TestWorkload scrapes the metrics of an open server after a known
// workload and checks each counter against it.
func TestWorkload(t *testing.T) {
	ts := testserver.MustOpen(t, testserver.Config{})
	for i := range 3 {
		do(t, "POST", ts.URL+"/logs", "", batch(5*i, 5), http.StatusCreated)
	}
	do(t, "POST", ts.URL+"/logs", "", batch(0, 5), http.StatusOK) // a replay appends nothing
	do(t, "GET", ts.URL+"/logs/no-such-record", "", "", http.StatusNotFound)
	do(t, "GET", ts.URL+"/logs/no-such-record", "", "", http.StatusNotFound)
	do(t, "GET", ts.URL+"/logs/./x", "", "", http.StatusBadRequest) // refused before routing
	do(t, "GET", ts.URL+"/no/such/route", "", "", http.StatusNotFound)
	testserver.WaitCheckpoint(t, ts.URL, ts.Verifier, 15)
	fams := scrape(t, ts.URL, "") // open: auth is off

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"trail_events_appended_total", []string{"log", ts.Log}, 15},
		{"trail_log_records", []string{"log", ts.Log}, 15},
		{"trail_ingest_batch_events", nil, 3},
		{"trail_ingest_commit_duration_seconds", nil, 3},
		{"trail_ingest_queued_events", nil, 0},
		{"trail_http_requests_total", []string{"route", "/logs", "method", "POST", "code", "201"}, 3},
		{"trail_http_requests_total", []string{"route", "/logs", "method", "POST", "code", "200"}, 1},
		{"trail_http_requests_total", []string{"route", "/logs/{id}", "method", "GET", "code", "404"}, 2},
		{"trail_http_requests_total", []string{"route", "none", "method", "GET", "code", "400"}, 1},
		{"trail_http_requests_total", []string{"route", "/", "method", "GET", "code", "404"}, 1},
		{"trail_http_request_duration_seconds", []string{"route", "/logs", "method", "POST"}, 4},
		{"trail_checkpoint_tree_size", []string{"log", ts.Log}, 15},
		{"trail_tail_subscribers", nil, 0},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := fams["trail_ingest_batch_events"].GetMetric()[0].GetHistogram().GetSampleSum(); got != 15 {
		t.Errorf("trail_ingest_batch_events sum: got %v, want 15", got)
	}
	if age := value(t, fams, "trail_checkpoint_age_seconds", "log", ts.Log); age < 0 || age > 60 {
		t.Errorf("trail_checkpoint_age_seconds: got %v, want a few seconds at most", age)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s: got none, want the runtime and process collectors", name)
		}
	}
	// The raw path is never a label: one series for every id.
	for _, m := range fams["trail_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" && strings.Contains(l.GetValue(), "no") && l.GetValue() != "none" {
				t.Errorf("route label: got %q, want the pattern", l.GetValue())
			}
		}
	}
}

// TestAuthMetrics checks that /metrics needs the metrics scope with auth
// on, and that refusals are counted.
func TestAuthMetrics(t *testing.T) {
	ts := testserver.MustOpen(t, testserver.Config{Auth: &auth.Config{FailuresPerMinute: 1e6}})
	key := func(spec trail.Key) string {
		spec.Name = "test"
		_, k, err := ts.Keys.CreateKey(t.Context(), &spec, nil)
		if err != nil {
			t.Fatalf("CreateKey: %v", err)
		}
		return "Bearer " + k
	}
	scraper := key(trail.Key{Scopes: []trail.Scope{trail.ScopeMetrics}})
	reader := key(trail.Key{Scopes: []trail.Scope{trail.ScopeRead, trail.ScopeAudit, trail.ScopeAdmin, trail.ScopeWrite}})
	slow := key(trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}, Rate: 2})

	do(t, "GET", ts.URL+"/metrics", "", "", http.StatusUnauthorized)
	do(t, "GET", ts.URL+"/metrics", "Bearer trail_nonsense", "", http.StatusUnauthorized)
	do(t, "GET", ts.URL+"/metrics", reader, "", http.StatusForbidden) // every other scope is not enough
	do(t, "POST", ts.URL+"/logs", slow, batch(0, 4), http.StatusCreated)
	do(t, "POST", ts.URL+"/logs", slow, batch(4, 2), http.StatusTooManyRequests)
	fams := scrape(t, ts.URL, scraper)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"trail_auth_failures_total", nil, 2},
		{"trail_rate_limited_total", []string{"policy", "key"}, 1},
		{"trail_http_requests_total", []string{"route", "/metrics", "method", "GET", "code", "401"}, 2},
		{"trail_http_requests_total", []string{"route", "/metrics", "method", "GET", "code", "403"}, 1},
		{"trail_http_requests_total", []string{"route", "/logs", "method", "POST", "code", "429"}, 1},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// brokenGets is a store whose Get fails as a store that is down does.
type brokenGets struct{ trail.Reader }

func (brokenGets) Get(context.Context, string) (*trail.Entry, error) {
	return nil, fmt.Errorf("disk on fire: %w", errors.New("I/O error"))
}

// TestStoreErrors checks that failed store reads are counted by operation,
// and that not-found answers are not.
func TestStoreErrors(t *testing.T) {
	ts := testserver.MustOpen(t, testserver.Config{WrapReader: func(r trail.Reader) trail.Reader { return brokenGets{r} }})
	do(t, "GET", ts.URL+"/logs/a", "", "", http.StatusInternalServerError)
	do(t, "GET", ts.URL+"/logs?limit=1", "", "", http.StatusOK)
	fams := scrape(t, ts.URL, "")
	if got := value(t, fams, "trail_store_errors_total", "op", "get"); got != 1 {
		t.Errorf("trail_store_errors_total{op=get}: got %v, want 1", got)
	}
	for _, m := range fams["trail_store_errors_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetValue() != "get" {
				t.Errorf("trail_store_errors_total: got a series %s, want only get", l.GetValue())
			}
		}
	}
}

// TestTailSubscribers checks the live-tail gauge as a subscriber connects
// and leaves.
func TestTailSubscribers(t *testing.T) {
	ts := testserver.MustOpen(t, testserver.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", ts.URL+"/logs/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /logs/stream: got %d, want 200", resp.StatusCode)
	}
	if got := value(t, scrape(t, ts.URL, ""), "trail_tail_subscribers"); got != 1 {
		t.Errorf("trail_tail_subscribers while one is connected: got %v, want 1", got)
	}
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := value(t, scrape(t, ts.URL, ""), "trail_tail_subscribers")
		if got == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trail_tail_subscribers after the subscriber left: got %v, want 0", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
