package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/httpapi"
	"github.com/trail-audit/trail/tail"
)

// sseEvent is one Server-Sent Event as a client sees it.
type sseEvent struct {
	name string // "" for a record
	id   string
	data string
}

// sseStream is an open GET /logs/stream.
type sseStream struct {
	resp    *http.Response
	cancel  context.CancelFunc
	sc      *bufio.Scanner
	beats   int    // heartbeat comments seen
	lastID  string // the last event id, as a browser's EventSource keeps it
	firstID string // the first event id
}

// openStream opens the stream at path (with its query) and fails the test
// unless it answers 200. Header pairs are name, value, ...
func (ts *testServer) openStream(tb testing.TB, path string, header ...string) *sseStream {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", ts.URL+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		cancel()
		tb.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		tb.Fatalf("GET %s: got status %d, want 200", path, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		tb.Errorf("GET %s: Content-Type: got %q, want text/event-stream", path, ct)
	}
	s := &sseStream{resp: resp, cancel: cancel, sc: bufio.NewScanner(resp.Body)}
	s.sc.Buffer(nil, 1<<20)
	tb.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event, skipping comments, or ok false at the end
// of the stream. As in a browser, an event without data is not
// dispatched, but its id becomes the last event id.
func (s *sseStream) next() (ev sseEvent, ok bool) {
	var data []string
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "" && data == nil:
			ev = sseEvent{}
		case line == "":
			ev.data = strings.Join(data, "\n")
			return ev, true
		case line == ": heartbeat":
			s.beats++
		case strings.HasPrefix(line, "id: "):
			ev.id, s.lastID = line[4:], line[4:]
			if s.firstID == "" {
				s.firstID = ev.id
			}
		case strings.HasPrefix(line, "event: "):
			ev.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:])
		}
	}
	return ev, false
}

// records reads n record events and fails the test on anything else.
func (s *sseStream) records(tb testing.TB, n int) []sseEvent {
	tb.Helper()
	var out []sseEvent
	for len(out) < n {
		ev, ok := s.next()
		if !ok {
			tb.Fatalf("stream ended after %d records, want %d", len(out), n)
		}
		if ev.name != "" {
			tb.Fatalf("after %d records: got event %q (%s), want a record", len(out), ev.name, ev.data)
		}
		out = append(out, ev)
	}
	return out
}

// tailEvent is the n-th event of the stream tests' workload.
func tailEvent(n int) map[string]any {
	return map[string]any{
		"id":      fmt.Sprintf("ev-%04d", n),
		"action":  []string{"invoice.paid", "invoice.sent", "account.created"}[n%3],
		"actor":   map[string]string{"id": fmt.Sprintf("u%d", n%5)},
		"source":  map[string]string{"service": []string{"billing", "auth"}[n%2]},
		"outcome": []string{"success", "failure", "unknown"}[n%7%3],
		"data":    map[string]int{"n": n},
	}
}

// postEvents posts events as one batch and returns their receipts.
func (ts *testServer) postEvents(tb testing.TB, events []map[string]any, header ...string) []trail.Receipt {
	tb.Helper()
	rs, err := ts.sendEvents(events, header...)
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

// sendEvents is postEvents for a goroutine other than the test's.
func (ts *testServer) sendEvents(events []map[string]any, header ...string) ([]trail.Receipt, error) {
	b, _ := json.Marshal(events)
	r, err := ts.send("POST", "/logs", string(b), append([]string{"Content-Type", "application/json"}, header...)...)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusCreated {
		return nil, fmt.Errorf("POST /logs: got status %d (%s), want 201", r.status, r.body)
	}
	var out struct{ Receipts []trail.Receipt }
	if err := json.Unmarshal(r.body, &out); err != nil {
		return nil, err
	}
	return out.Receipts, nil
}

// TestStreamFilters posts 1,000 events from four producers at once while
// three subscribers with different filters follow the log: each receives
// exactly its matches, in commit order. A final event that matches every
// filter ends each stream (limit), so that a stray extra record would
// push it out and fail the test.
func TestStreamFilters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ts := MustOpenServer(t, serverConfig{Backend: backend})
		filters := []struct {
			query string
			match func(e map[string]any) bool
		}{
			{"action=invoice.*", func(e map[string]any) bool { return strings.HasPrefix(e["action"].(string), "invoice.") }},
			{"actor=u3", func(e map[string]any) bool { return e["actor"].(map[string]string)["id"] == "u3" }},
			{"source=billing&outcome=failure", func(e map[string]any) bool {
				return e["source"].(map[string]string)["service"] == "billing" && e["outcome"] == "failure"
			}},
		}
		const total, producers, batch = 1000, 4, 25
		events := make([]map[string]any, total)
		for i := range events {
			events[i] = tailEvent(i)
		}
		last := map[string]any{"id": "ev-last", "action": "invoice.last", "actor": map[string]string{"id": "u3"},
			"source": map[string]string{"service": "billing"}, "outcome": "failure"}
		streams := make([]*sseStream, len(filters))
		for i, f := range filters {
			n := 1
			for _, e := range events {
				if f.match(e) {
					n++
				}
			}
			streams[i] = ts.openStream(t, fmt.Sprintf("/logs/stream?%s&limit=%d", f.query, n))
		}

		seqs := map[string]int64{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for p := range producers {
			wg.Go(func() {
				for from := p * batch; from < total; from += producers * batch {
					rs, err := ts.sendEvents(events[from : from+batch])
					if err != nil {
						t.Error(err)
						return
					}
					for _, rc := range rs {
						mu.Lock()
						seqs[rc.ID] = rc.Seq
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		ts.postEvents(t, []map[string]any{last})

		for i, f := range filters {
			var want []string
			for _, e := range events {
				if f.match(e) {
					want = append(want, e["id"].(string))
				}
			}
			slices.SortFunc(want, func(a, b string) int { return int(seqs[a] - seqs[b]) })
			want = append(want, "ev-last")
			var got []string
			for _, ev := range streams[i].records(t, len(want)) {
				got = append(got, mustRecord(t, []byte(ev.data)).ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: got %d records %v…, want %d in commit order %v…", f.query, len(got), head(got), len(want), head(want))
			}
			if ev, ok := streams[i].next(); ok {
				t.Errorf("%s: after the limit: got event %+v, want the end of the stream", f.query, ev)
			}
		}
	})
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// TestStreamResume disconnects a subscriber and resumes it, with
// Last-Event-ID and with ?cursor=: it misses nothing and repeats nothing,
// the events committed while it was away included. The id a live stream
// sends first, before any record, resumes from where it began.
func TestStreamResume(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	ts.postEvents(t, []map[string]any{tailEvent(100)}) // not an empty log
	var all []map[string]any
	for i := range 60 {
		all = append(all, tailEvent(i))
	}
	ids := func(evs []sseEvent) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, mustRecord(t, []byte(ev.data)).ID)
		}
		return out
	}
	wantIDs := func(from, to int) []string {
		var out []string
		for _, e := range all[from:to] {
			out = append(out, e["id"].(string))
		}
		return out
	}

	s := ts.openStream(t, "/logs/stream")
	ts.postEvents(t, all[:20])
	got := s.records(t, 20)
	start := s.firstID
	s.close()
	ts.postEvents(t, all[20:40]) // while nobody listens

	s = ts.openStream(t, "/logs/stream", "Last-Event-ID", got[9].id)
	resumed := s.records(t, 30)
	ts.postEvents(t, all[40:60]) // live, after the catch-up
	resumed = append(resumed, s.records(t, 20)...)
	if got, want := ids(resumed), wantIDs(10, 60); !slices.Equal(got, want) {
		t.Errorf("resumed with Last-Event-ID: got %v, want %v", got, want)
	}
	s = ts.openStream(t, "/logs/stream?limit=5&cursor="+resumed[44].id)
	if got, want := ids(s.records(t, 5)), wantIDs(55, 60); !slices.Equal(got, want) {
		t.Errorf("resumed with ?cursor=: got %v, want %v", got, want)
	}
	if start == "" || start == got[0].id {
		t.Fatalf("first id of a live stream: got %q, want one sent before the first record", start)
	}
	s = ts.openStream(t, "/logs/stream?limit=60", "Last-Event-ID", start)
	if got, want := ids(s.records(t, 60)), wantIDs(0, 60); !slices.Equal(got, want) {
		t.Errorf("resumed from the first id: got %v, want %v", got, want)
	}
}

// TestStreamSlowSubscriber follows the log with a client that reads
// nothing while large events are posted: ingest goes on at full speed, and
// once the subscriber's queue holds QueueBytes it is cut off. It then receives
// what was buffered, in order, and a final "end" event, and resumes from
// its last id without a gap.
func TestStreamSlowSubscriber(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{Tail: tail.Config{QueueBytes: 1536 << 10}}) // about 50 records
	slow := ts.openStream(t, "/logs/stream")
	fast := ts.openStream(t, "/logs/stream")
	pad := strings.Repeat("x", 30000)
	const n = 400 // 12 MB: more than the socket buffers hold
	done := make(chan struct{})
	go func() {
		defer close(done)
		for from := 0; from < n; from += 10 {
			var batch []map[string]any
			for i := from; i < from+10; i++ {
				e := tailEvent(i)
				e["data"] = map[string]any{"n": i, "pad": pad}
				batch = append(batch, e)
			}
			if _, err := ts.sendEvents(batch); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	fastGot := fast.records(t, n) // a reader that keeps up is never cut off
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ingest stalled behind a subscriber that reads nothing")
	}
	if id := mustRecord(t, []byte(fastGot[n-1].data)).ID; id != fmt.Sprintf("ev-%04d", n-1) {
		t.Errorf("reader that keeps up: last record: got %s, want ev-%04d", id, n-1)
	}

	var got []sseEvent
	var end sseEvent
	for {
		ev, ok := slow.next()
		if !ok {
			t.Fatalf("slow subscriber: stream ended after %d records without an end event", len(got))
		}
		if ev.name != "" {
			end = ev
			break
		}
		got = append(got, ev)
	}
	var p trail.Problem
	if err := json.Unmarshal([]byte(end.data), &p); err != nil || end.name != "end" || p.Code != trail.EUNAVAILABLE || p.Status != 503 {
		t.Fatalf("slow subscriber: final event: got %q %s, want end with a 503 problem", end.name, end.data)
	}
	if len(got) >= n {
		t.Fatalf("slow subscriber: got all %d records, want a cut-off", len(got))
	}
	for i, ev := range got {
		if id, want := mustRecord(t, []byte(ev.data)).ID, fmt.Sprintf("ev-%04d", i); id != want {
			t.Fatalf("slow subscriber: record %d: got %s, want %s", i, id, want)
		}
	}
	if _, ok := slow.next(); ok {
		t.Error("slow subscriber: got an event after the end event, want the end of the stream")
	}
	resumeAt := ""
	if len(got) > 0 {
		resumeAt = got[len(got)-1].id
	}
	if resumeAt != "" {
		rest := ts.openStream(t, "/logs/stream?limit="+fmt.Sprint(n-len(got)), "Last-Event-ID", resumeAt).records(t, n-len(got))
		if id, want := mustRecord(t, []byte(rest[0].data)).ID, fmt.Sprintf("ev-%04d", len(got)); id != want {
			t.Errorf("resumed after the cut-off: first record: got %s, want %s", id, want)
		}
	}
}

// TestStreamMemoryBudget: each open stream reserves its share of the
// tail's memory budget; the stream that does not fit gets a 503
// problem+json with Retry-After, and reads and writes go on.
func TestStreamMemoryBudget(t *testing.T) {
	// A stream reserves QueueBytes and twice the page: 3 MiB here.
	ts := MustOpenServer(t, serverConfig{
		Memory: httpapi.Memory{Response: 512 << 10},
		Tail:   tail.Config{QueueBytes: 2 << 20, Memory: 6 << 20},
	})
	ts.openStream(t, "/logs/stream")
	ts.openStream(t, "/logs/stream?action=a.b")
	r := ts.do(t, "GET", "/logs/stream", "")
	if p := r.problem(t, http.StatusServiceUnavailable); p.Code != trail.EUNAVAILABLE || r.header.Get("Retry-After") == "" {
		t.Errorf("third stream: got %+v, Retry-After %q; want %s with a Retry-After", p, r.header.Get("Retry-After"), trail.EUNAVAILABLE)
	}
	ts.post(t, eventJSON("after", 1)).wantStatus(t, http.StatusCreated)
	ts.do(t, "GET", "/logs/after", "").wantStatus(t, http.StatusOK)
}

// TestStreamHeartbeat: an idle stream sends a comment every heartbeat.
func TestStreamHeartbeat(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{Heartbeat: 20 * time.Millisecond})
	s := ts.openStream(t, "/logs/stream")
	go func() {
		time.Sleep(100 * time.Millisecond)
		if _, err := ts.sendEvents([]map[string]any{tailEvent(1)}); err != nil {
			t.Error(err)
		}
	}()
	s.records(t, 1)
	if s.beats < 2 {
		t.Errorf("heartbeats in 100ms at 20ms: got %d, want at least 2", s.beats)
	}
}

// TestStreamTenant: a tenant-bound reader's stream holds only its
// tenant's records, and it may not ask for another's.
func TestStreamTenant(t *testing.T) {
	ts := MustOpenAuthServer(t, "sqlite")
	writer := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}})
	readA := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeRead}, Tenant: "A"})
	s := ts.openStream(t, "/logs/stream", "Authorization", readA)
	var events []map[string]any
	for i := range 10 {
		e := tailEvent(i)
		e["tenant"] = []string{"A", "B"}[i%2]
		events = append(events, e)
	}
	ts.postEvents(t, events, "Authorization", writer)
	for i, ev := range s.records(t, 5) {
		if r := mustRecord(t, []byte(ev.data)); r.Tenant != "A" || r.ID != events[2*i]["id"] {
			t.Errorf("record %d: got %s of tenant %q, want %s of tenant A", i, r.ID, r.Tenant, events[2*i]["id"])
		}
	}
	ts.as(t, readA, "GET", "/logs/stream?tenant=B", "").problem(t, http.StatusForbidden)
}

// TestStreamBadRequests: what the stream refuses before it starts. A
// HEAD gets the stream's headers and ends.
func TestStreamBadRequests(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	if r := ts.do(t, "HEAD", "/logs/stream", ""); r.status != http.StatusOK || r.header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD /logs/stream: got %d %q, want 200 text/event-stream", r.status, r.header.Get("Content-Type"))
	}
	other := (&trail.Cursor{Log: "another-log", Seq: 3}).String()
	for _, c := range []struct {
		path, lastEventID, want string
	}{
		{"/logs/stream?order=desc", "", `"order"`},
		{"/logs/stream?color=red", "", `"color"`},
		{"/logs/stream", "nonsense", "Last-Event-ID"},
		{"/logs/stream?cursor=nonsense", "", `"cursor"`},
		{"/logs/stream?cursor=" + other, "", `"another-log"`},
	} {
		var h []string
		if c.lastEventID != "" {
			h = []string{"Last-Event-ID", c.lastEventID}
		}
		p := ts.do(t, "GET", c.path, "", h...).problem(t, http.StatusBadRequest)
		if !strings.Contains(p.Detail, c.want) {
			t.Errorf("GET %s (Last-Event-ID %q): detail %q, want it to name %s", c.path, c.lastEventID, p.Detail, c.want)
		}
	}
}

// statusOfStream opens the stream at path with Authorization h and returns
// its status and headers, with the body only for an error: a stream that
// starts is closed at once.
func (ts *testServer) statusOfStream(tb testing.TB, h, path string) *response {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", ts.URL+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if h != "" {
		req.Header.Set("Authorization", h)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	r := &response{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		r.body, _ = io.ReadAll(resp.Body)
	}
	return r
}
