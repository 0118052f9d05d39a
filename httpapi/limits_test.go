package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/httpapi"
	"github.com/trail-audit/trail/internal/testserver"
)

// dialPost opens a connection to ts and sends the headers of a POST /logs
// that promises contentLength bytes, then the body; the connection stays
// open until the test ends.
func dialPost(tb testing.TB, ts *testServer, contentLength int, body string) net.Conn {
	tb.Helper()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /logs HTTP/1.1\r\nHost: trail\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", contentLength, body)
	return c
}

// mustOpenRawServer starts a test server without MustOpenServer's OpenAPI
// validator, which reads each request body whole before the API sees it:
// these tests are about how the API itself reads bodies.
func mustOpenRawServer(tb testing.TB, cfg serverConfig) *testServer {
	tb.Helper()
	return &testServer{testserver.MustOpen(tb, cfg)}
}

// heapInUse returns the bytes of live heap objects after a collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestBodyMemoryFollowsBytesReceived sends the headers of requests that
// promise 10 MiB bodies and sends no body: the server must not set memory
// aside for bytes that never come (it once grew by each Content-Length).
func TestBodyMemoryFollowsBytesReceived(t *testing.T) {
	ts := mustOpenRawServer(t, serverConfig{})
	before := heapInUse()
	const conns = 20
	for range conns {
		dialPost(t, ts, 10<<20, `[`)
	}
	// Give the handlers time to start reading; each would hold 10 MiB at once.
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		if grown := heapInUse() - before; grown > 16<<20 {
			t.Fatalf("heap grew by %d bytes for %d requests that sent 1 body byte each, want under %d", grown, conns, 16<<20)
		}
	}
	// The budget counts what was received, not what was promised, so
	// a producer still gets through.
	ts.post(t, eventJSON("", 1)).wantStatus(t, http.StatusCreated)
}

// TestBodyBudget fills the body budget with one slow request body: others
// get 503 with Retry-After until it ends.
func TestBodyBudget(t *testing.T) {
	ts := mustOpenRawServer(t, serverConfig{Memory: httpapi.Memory{Bodies: 300 << 10}})
	// 200 KiB received of a promised 1 MiB: the buffer has doubled up to
	// 256 KiB of the 300.
	slow := dialPost(t, ts, 1<<20, "["+strings.Repeat(" ", 200<<10))
	time.Sleep(100 * time.Millisecond) // let it take its share first
	batch := bigEvents(0, 10, 5000)    // 50 KiB: more than is left
	var r *response
	for range 100 {
		if r = ts.post(t, batch); r.status == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p := r.problem(t, http.StatusServiceUnavailable)
	if p.Code != trail.EUNAVAILABLE || r.header.Get("Retry-After") == "" {
		t.Fatalf("got code %q and Retry-After %q, want %q and a Retry-After", p.Code, r.header.Get("Retry-After"), trail.EUNAVAILABLE)
	}
	// A single event still fits beside it.
	ts.post(t, eventJSON("", 1)).wantStatus(t, http.StatusCreated)
	slow.Close()
	for range 100 {
		if r = ts.post(t, batch); r.status != http.StatusServiceUnavailable {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.wantStatus(t, http.StatusCreated)
}

// bigEvents makes a JSON array of n events whose data holds size bytes.
func bigEvents(from, n, size int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"action":"big.event","actor":{"id":"u"},"source":{"service":"test"},"data":{"n":%d,"pad":%q}}`, from+i, strings.Repeat("x", size))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// TestListPageBytes lists records larger than a page may hold: each page
// stops at Memory.Response bytes (at least one record), and next
// continues, so that paging still yields every record once.
func TestListPageBytes(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{Memory: httpapi.Memory{Response: 4 << 10}})
	ts.post(t, bigEvents(0, 20, 1000)).wantStatus(t, http.StatusCreated)
	ts.post(t, bigEvents(20, 1, 10000)).wantStatus(t, http.StatusCreated) // larger than a page

	pages := 0
	ids := listAll(t, ts, "/logs?limit=100", nil)
	for path := "/logs?limit=100"; path != ""; pages++ {
		r := ts.do(t, "GET", path, "")
		var page struct {
			Events []json.RawMessage `json:"events"`
			Next   *string           `json:"next"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == 0 {
			t.Fatalf("page %d: got no events, want at least one", pages)
		}
		if len(page.Events) > 1 && len(r.body) > 4<<10+200 {
			t.Fatalf("page %d: got %d bytes in %d events, want at most 4 KiB of records", pages, len(r.body), len(page.Events))
		}
		path = ""
		if page.Next != nil {
			path = "/logs?limit=100&cursor=" + *page.Next
		}
	}
	if len(ids) != 21 || pages < 5 {
		t.Fatalf("got %d records in %d pages, want 21 in at least 5", len(ids), pages)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("%s listed twice", id)
		}
		seen[id] = true
	}
}

// TestStreamPages streams an export and an NDJSON list over many pages
// of Memory.Response bytes: every record comes once, in order.
func TestStreamPages(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{Memory: httpapi.Memory{Response: 4 << 10}})
	ts.post(t, bigEvents(0, 50, 500)).wantStatus(t, http.StatusCreated)
	ts.post(t, bigEvents(50, 1, 10000)).wantStatus(t, http.StatusCreated)
	ts.post(t, bigEvents(51, 9, 500)).wantStatus(t, http.StatusCreated)

	h, lines := getExport(t, ts, "?to=end")
	if h.To != 60 || len(lines) != 60 {
		t.Fatalf("export: got to=%d and %d records, want 60 and 60", h.To, len(lines))
	}
	for i, l := range lines {
		if rec := mustRecord(t, l); rec.Seq != int64(i) {
			t.Fatalf("export line %d: got seq %d, want %d", i, rec.Seq, i)
		}
	}
	_, lines = getExport(t, ts, "?from=45&to=52")
	if len(lines) != 7 || mustRecord(t, lines[0]).Seq != 45 {
		t.Fatalf("export [45, 52): got %d records, want 7 from seq 45", len(lines))
	}

	for _, tt := range []struct {
		query string
		want  int
	}{{"?order=asc", 60}, {"", 60}, {"?limit=13", 13}} {
		r := ts.do(t, "GET", "/logs"+tt.query, "", "Accept", "application/x-ndjson")
		r.wantStatus(t, http.StatusOK)
		sc := bufio.NewScanner(strings.NewReader(string(r.body)))
		seqs := map[int64]bool{}
		prev := int64(-1)
		for sc.Scan() {
			rec := mustRecord(t, sc.Bytes())
			if seqs[rec.Seq] || (tt.query == "?order=asc" && rec.Seq != prev+1) {
				t.Fatalf("%s: got seq %d after %d", tt.query, rec.Seq, prev)
			}
			seqs[rec.Seq], prev = true, rec.Seq
		}
		if len(seqs) != tt.want {
			t.Fatalf("%s: got %d records, want %d", tt.query, len(seqs), tt.want)
		}
	}
}

// gatedStore is the real store whose range scans wait for open, so that a
// test can hold an export in the middle of its response.
type gatedStore struct {
	trail.Reader
	entered chan struct{} // gets a value when a scan starts waiting
	open    chan struct{}
}

func (s *gatedStore) Scan(ctx context.Context, log string, from, to int64, fn func(*trail.Entry) error) error {
	if to != math.MaxInt64 { // logSize's probe passes
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-s.open
	}
	return s.Reader.Scan(ctx, log, from, to, fn)
}

// TestReadBudget holds one export mid-response: while it holds its pages'
// share of the read budget, other streams get 503 with Retry-After.
func TestReadBudget(t *testing.T) {
	gate := &gatedStore{entered: make(chan struct{}, 1), open: make(chan struct{})}
	ts := MustOpenServer(t, serverConfig{
		Memory:     httpapi.Memory{Response: 64 << 10, Reads: 160 << 10},
		WrapReader: func(s trail.Reader) trail.Reader { gate.Reader = s; return gate },
	})
	ts.post(t, batchJSON(0, 10)).wantStatus(t, http.StatusCreated)
	var once sync.Once
	release := func() { once.Do(func() { close(gate.open) }) }
	t.Cleanup(release) // before the server closes: it waits for the export

	done := make(chan *response, 1)
	go func() {
		r, err := http.Get(ts.URL + "/export?to=end")
		if err != nil {
			done <- &response{}
			return
		}
		r.Body.Close()
		done <- &response{status: r.StatusCode}
	}()
	<-gate.entered
	r := ts.do(t, "GET", "/logs", "", "Accept", "application/x-ndjson")
	p := r.problem(t, http.StatusServiceUnavailable)
	if p.Code != trail.EUNAVAILABLE || r.header.Get("Retry-After") == "" {
		t.Fatalf("got code %q and Retry-After %q, want %q and a Retry-After", p.Code, r.header.Get("Retry-After"), trail.EUNAVAILABLE)
	}
	release()
	if r := <-done; r.status != http.StatusOK {
		t.Fatalf("held export: got %d, want 200", r.status)
	}
	// Released (the handler returns just after its last byte): the next
	// stream fits again.
	for range 100 {
		if r = ts.do(t, "GET", "/logs", "", "Accept", "application/x-ndjson"); r.status != http.StatusServiceUnavailable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.wantStatus(t, http.StatusOK)
}
