package httpapi_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/httpapi"
	"github.com/trail-audit/trail/ingest"
	"github.com/trail-audit/trail/internal/testserver"
	"github.com/trail-audit/trail/merkle"
	"github.com/trail-audit/trail/sqlite"
	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The ingester is what cmd/trail passes as the Ingester.
var _ trail.Ingester = (*ingest.Ingester)(nil)

// serverConfig varies the test server.
type serverConfig = testserver.Config

// testServer is the real thing on loopback, as cmd/trail serve builds it
// (internal/testserver).
type testServer struct{ *testserver.Server }

// MustOpenServer starts a test server and closes it when the test ends.
// In tests, though not in benchmarks, which it would slow, every request
// and answer it serves is checked against the OpenAPI document
// (internal/testopenapi), and a mismatch fails the test.
func MustOpenServer(tb testing.TB, cfg serverConfig) *testServer {
	tb.Helper()
	if _, bench := tb.(*testing.B); !bench {
		validate := openAPIValidator(tb).Wrap(tb)
		if inner := cfg.WrapHandler; inner != nil {
			cfg.WrapHandler = func(h http.Handler) http.Handler { return validate(inner(h)) }
		} else {
			cfg.WrapHandler = validate
		}
	}
	return &testServer{testserver.MustOpen(tb, cfg)}
}

// backends are the stores the HTTP behaviour must be the same on.
var backends = []string{"sqlite", "seglog", "mongo"}

// forEachBackend runs f as a subtest on each backend.
func forEachBackend(t *testing.T, f func(t *testing.T, backend string)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { f(t, b) })
	}
}

// response is a read HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; header pairs are name, value, name, value...
func (ts *testServer) do(tb testing.TB, method, path, body string, header ...string) *response {
	tb.Helper()
	r, err := ts.send(method, path, body, header...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// send is do for a goroutine other than the test's, where tb.Fatal must
// not run: it returns the error.
func (ts *testServer) send(method, path, body string, header ...string) (*response, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, r)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// post sends a JSON body to /logs.
func (ts *testServer) post(tb testing.TB, body string) *response {
	tb.Helper()
	return ts.do(tb, "POST", "/logs", body, "Content-Type", "application/json")
}

// size returns how many records the store's log holds.
func (ts *testServer) size(tb testing.TB) int64 {
	tb.Helper()
	h, err := ts.Store.Head(context.Background())
	if err != nil {
		tb.Fatalf("Head: %v", err)
	}
	return h.Size
}

// wantStatus fails the test unless r has the status.
func (r *response) wantStatus(tb testing.TB, status int) {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status: got %d, want %d; body: %s", r.status, status, r.body)
	}
}

// problem checks that r is a problem+json answer of the status and returns it.
func (r *response) problem(tb testing.TB, status int) trail.Problem {
	tb.Helper()
	r.wantStatus(tb, status)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		tb.Fatalf("Content-Type: got %q, want application/problem+json", ct)
	}
	var p trail.Problem
	var members map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &p); err != nil {
		tb.Fatalf("problem body %s: %v", r.body, err)
	}
	// trail.Problem is shared with the client, so the names on the wire are
	// checked here, once, against RFC 9457 and docs/API.md.
	_ = json.Unmarshal(r.body, &members)
	for _, k := range []string{"type", "title", "status", "detail", "instance", "code", "request_id"} {
		if _, ok := members[k]; !ok {
			tb.Fatalf("problem body %s: got no member %q, want every member", r.body, k)
		}
	}
	if p.Status != status || p.Title == "" || p.Detail == "" || p.Instance == "" || !strings.HasPrefix(p.Type, "https://trail.dev/problems/") {
		tb.Fatalf("problem: got %+v, want status %d and every member set", p, status)
	}
	if id := r.header.Get("X-Request-Id"); id == "" || p.RequestID != id {
		tb.Fatalf("request_id: got %q in the body and %q in X-Request-Id, want the same non-empty id", p.RequestID, id)
	}
	return p
}

// eventJSON makes a valid event with the id (none if "") and a number that
// keeps contents distinct.
func eventJSON(id string, n int) string {
	idField := ""
	if id != "" {
		idField = fmt.Sprintf(`"id":%q,`, id)
	}
	return fmt.Sprintf(`{%s"action":"account.created","actor":{"id":"u%d"},"source":{"service":"test"},"data":{"n":%d}}`, idField, n, n)
}

// batchJSON makes a JSON array of n events without ids.
func batchJSON(from, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = eventJSON("", from+i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

type receiptsBody struct {
	Receipts []trail.Receipt `json:"receipts"`
}

func TestPostContentTypes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ts := MustOpenServer(t, serverConfig{Backend: backend})
		for _, tt := range []struct {
			name, contentType, body string
			want                    int // receipts; 0: a single receipt object
		}{
			{"object", "application/json", eventJSON("", 1), 0},
			{"object with charset", "application/json; charset=utf-8", eventJSON("", 2), 0},
			{"legacy object", "application/json", `{"user_id":"u1","event_type":"User.Login","timestamp":"2024-01-02T03:04:05Z","src_service":"auth","invariant_data":{"a":1},"app_data":{"b":2}}`, 0},
			{"array", "application/json", batchJSON(10, 3), 3},
			{"array of one", "application/json", "[" + eventJSON("", 20) + "]", 1},
			{"ndjson", "application/x-ndjson", eventJSON("", 30) + "\n" + eventJSON("", 31) + "\n", 2},
			{"ndjson without final newline, blank lines", "application/x-ndjson", "\n" + eventJSON("", 40) + "\n\n" + eventJSON("", 41), 2},
			{"ndjson of one", "application/x-ndjson", eventJSON("", 50), 1},
			{"application/ndjson", "application/ndjson", eventJSON("", 60) + "\n", 1},
			{"application/jsonl", "application/jsonl", eventJSON("", 70) + "\n" + eventJSON("", 71) + "\n", 2},
		} {
			t.Run(tt.name, func(t *testing.T) {
				before := ts.size(t)
				r := ts.do(t, "POST", "/logs", tt.body, "Content-Type", tt.contentType)
				r.wantStatus(t, http.StatusCreated)
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type: got %q, want application/json", ct)
				}
				var receipts []trail.Receipt
				if tt.want == 0 {
					var rc trail.Receipt
					if err := json.Unmarshal(r.body, &rc); err != nil {
						t.Fatalf("receipt %s: %v", r.body, err)
					}
					if got, want := r.header.Get("Location"), "/logs/"+rc.ID; got != want {
						t.Fatalf("Location: got %q, want %q", got, want)
					}
					receipts = []trail.Receipt{rc}
				} else {
					var rb receiptsBody
					if err := json.Unmarshal(r.body, &rb); err != nil {
						t.Fatalf("receipts %s: %v", r.body, err)
					}
					if len(rb.Receipts) != tt.want {
						t.Fatalf("receipts: got %d, want %d", len(rb.Receipts), tt.want)
					}
					if loc := r.header.Get("Location"); loc != "" {
						t.Fatalf("Location on a batch: got %q, want none", loc)
					}
					receipts = rb.Receipts
				}
				for i, rc := range receipts {
					if rc.ID == "" || rc.Log != ts.Log || rc.Seq != before+int64(i) || rc.ReceivedAt.IsZero() {
						t.Fatalf("receipt %d: got %+v, want id, log %q, seq %d and received_at", i, rc, ts.Log, before+int64(i))
					}
					e, err := ts.Store.Get(context.Background(), rc.ID)
					if err != nil {
						t.Fatalf("stored record %s: %v", rc.ID, err)
					}
					if got, want := rc.LeafHash, tlog.RecordHash(e.Bytes); got != want {
						t.Fatalf("leaf_hash: got %v, want %v", got, want)
					}
				}
				if got, want := ts.size(t), before+int64(len(receipts)); got != want {
					t.Fatalf("records: got %d, want %d", got, want)
				}
			})
		}
	})
}

func TestPostIdempotency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ts := MustOpenServer(t, serverConfig{Backend: backend})

		first := ts.post(t, eventJSON("evt-1", 1))
		first.wantStatus(t, http.StatusCreated)
		var rc trail.Receipt
		if err := json.Unmarshal(first.body, &rc); err != nil {
			t.Fatal(err)
		}

		replay := ts.post(t, eventJSON("evt-1", 1))
		replay.wantStatus(t, http.StatusOK)
		if !bytes.Equal(replay.body, first.body) {
			t.Fatalf("replay receipt: got %s, want the original %s", replay.body, first.body)
		}
		if got, want := replay.header.Get("Location"), "/logs/evt-1"; got != want {
			t.Fatalf("replay Location: got %q, want %q", got, want)
		}

		p := ts.post(t, eventJSON("evt-1", 2)).problem(t, http.StatusConflict)
		if !strings.Contains(p.Detail, "evt-1") || p.Code != trail.ECONFLICT {
			t.Fatalf("conflict: got %+v, want code conflict and a detail naming evt-1", p)
		}

		// A batch of replays only is 200; one new event makes it 201, with the
		// replayed receipt unchanged.
		ts.post(t, "["+eventJSON("evt-2", 3)+","+eventJSON("evt-3", 4)+"]").wantStatus(t, http.StatusCreated)
		r := ts.do(t, "POST", "/logs", eventJSON("evt-2", 3)+"\n"+eventJSON("evt-3", 4)+"\n", "Content-Type", "application/x-ndjson")
		r.wantStatus(t, http.StatusOK)
		r = ts.post(t, "["+eventJSON("evt-1", 1)+","+eventJSON("evt-4", 5)+"]")
		r.wantStatus(t, http.StatusCreated)
		var rb receiptsBody
		if err := json.Unmarshal(r.body, &rb); err != nil {
			t.Fatal(err)
		}
		if len(rb.Receipts) != 2 || !receiptEqual(rb.Receipts[0], rc) || rb.Receipts[1].ID != "evt-4" {
			t.Fatalf("mixed batch receipts: got %+v, want evt-1's original %+v, then evt-4", rb.Receipts, rc)
		}

		// A batch with one conflicting id stores nothing.
		before := ts.size(t)
		p = ts.post(t, "["+eventJSON("evt-5", 6)+","+eventJSON("evt-2", 99)+"]").problem(t, http.StatusConflict)
		if !strings.Contains(p.Detail, "evt-2") {
			t.Fatalf("conflict detail: got %q, want it to name evt-2", p.Detail)
		}
		if got := ts.size(t); got != before {
			t.Fatalf("records after a refused batch: got %d, want %d", got, before)
		}
		if got, want := ts.size(t), int64(4); got != want {
			t.Fatalf("records: got %d, want %d (each id once)", got, want)
		}
	})
}

func receiptEqual(a, b trail.Receipt) bool {
	return a.ID == b.ID && a.Log == b.Log && a.Seq == b.Seq && a.ReceivedAt.Equal(b.ReceivedAt) && a.LeafHash == b.LeafHash
}

func TestPostBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		lim := trail.Limits{MaxEventBytes: 1024, MaxRequestBytes: 8192, MaxBatchEvents: 5}
		ts := MustOpenServer(t, serverConfig{Backend: backend, Limits: lim})
		ts.post(t, eventJSON("taken", 0)).wantStatus(t, http.StatusCreated)

		const (
			jsonCT   = "application/json"
			ndjsonCT = "application/x-ndjson"
		)
		valid := eventJSON("", 1)
		noAction := `{"actor":{"id":"u"},"source":{"service":"s"}}`
		big := `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{"pad":"` + strings.Repeat("x", 1100) + `"}}`
		lines := func(events ...string) string { return strings.Join(events, "\n") + "\n" }
		array := func(events ...string) string { return "[" + strings.Join(events, ",") + "]" }

		for _, tt := range []struct {
			name        string
			contentType string
			header      []string
			body        string
			status      int
			detail      string // substring of the detail
			item        int    // index of the bad item in "errors"; -1: no errors member
		}{
			{"malformed JSON", jsonCT, nil, `{"action":`, 400, "malformed JSON", -1},
			{"malformed JSON array", jsonCT, nil, `[{"action":"a.b"},`, 400, "malformed JSON", -1},
			{"trailing data", jsonCT, nil, valid + valid, 400, "unexpected data after the event", -1},
			{"not an object", jsonCT, nil, `"hello"`, 400, "must be a JSON object", -1},
			{"empty body", jsonCT, nil, "", 400, "request body is empty", -1},
			{"wrong content type", "text/plain", nil, valid, 415, `"text/plain" is not supported`, -1},
			{"form content type", "application/x-www-form-urlencoded", nil, valid, 415, "not supported", -1},
			{"no content type", "", nil, valid, 415, "Content-Type is missing", -1},
			{"latin1 charset", "application/json; charset=iso-8859-1", nil, valid, 415, `charset "iso-8859-1"`, -1},
			{"gzip body", jsonCT, []string{"Content-Encoding", "gzip"}, valid, 415, `Content-Encoding "gzip"`, -1},
			{"unknown top-level field", jsonCT, nil, `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"colour":"red"}`, 400, `unknown field "colour"`, -1},
			{"missing action", jsonCT, nil, noAction, 400, `"action" is required`, -1},
			{"missing actor.id", jsonCT, nil, `{"action":"a.b","actor":{"type":"user"},"source":{"service":"s"}}`, 400, `"actor.id" is required`, -1},
			{"missing source.service", jsonCT, nil, `{"action":"a.b","actor":{"id":"u"}}`, 400, `"source.service" is required`, -1},
			{"bad time", jsonCT, nil, `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"time":"yesterday"}`, 400, `"time" must be an RFC 3339 time`, -1},
			{"bad legacy timestamp", jsonCT, nil, `{"event_type":"a.b","user_id":"u","src_service":"s","timestamp":"2024-13-01"}`, 400, `"timestamp" must be an RFC 3339 time`, -1},
			{"non-object data", jsonCT, nil, `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":[1,2]}`, 400, `"data" must be a JSON object`, -1},
			{"bad id", jsonCT, nil, `{"id":"a b","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`, 400, `"id" may hold only`, -1},
			{"conflicting id", jsonCT, nil, eventJSON("taken", 1), 409, `"taken"`, -1},
			{"invalid UTF-8", jsonCT, nil, "{\"action\":\"a.b\",\"actor\":{\"id\":\"u\xff\"},\"source\":{\"service\":\"s\"}}", 400, "UTF-8", -1},
			{"invalid UTF-8 in a batch", jsonCT, nil, "[{\"action\":\"a.b\",\"actor\":{\"id\":\"u\xfe\"},\"source\":{\"service\":\"s\"}}]", 400, "UTF-8", -1},
			{"invalid UTF-8 in NDJSON", ndjsonCT, nil, lines(valid, "{\"action\":\"a.b\",\"actor\":{\"id\":\"\xc3\x28\"},\"source\":{\"service\":\"s\"}}"), 400, "item 1: event is not valid UTF-8", 1},
			{"body over limit", jsonCT, nil, array(big[:1000]+`"}}`, strings.Repeat(" ", 8000)), 413, "limit of 8192 bytes", -1},
			{"event over limit", jsonCT, nil, big, 413, "the limit is 1024", -1},
			{"event over limit in a batch", jsonCT, nil, array(valid, big), 413, "item 1: event is", 1},
			{"event over limit in NDJSON", ndjsonCT, nil, lines(big, valid), 413, "item 0: event is", 0},
			{"batch over item limit", jsonCT, nil, array(valid, valid, valid, valid, valid, valid), 413, "batch has 6 events; the limit is 5", -1},
			{"NDJSON over item limit", ndjsonCT, nil, lines(valid, valid, valid, valid, valid, valid), 413, "the limit is 5", -1},
			{"empty batch", jsonCT, nil, "[]", 400, "batch is empty", -1},
			{"empty NDJSON", ndjsonCT, nil, "\n\n", 400, "request body is empty", -1},
			{"batch with one bad item", jsonCT, nil, array(valid, eventJSON("", 2), noAction, eventJSON("", 3)), 400, `item 2: field "action" is required`, 2},
			{"NDJSON with one bad line", ndjsonCT, nil, lines(valid, `{"action":"a.b"`, eventJSON("", 2)), 400, "item 1: malformed JSON", 1},
			{"batch repeating an id", jsonCT, nil, array(eventJSON("dup", 1), eventJSON("dup", 2)), 400, `item 1: id "dup" repeats the id of item 0`, 1},
			{"batch item not an object", jsonCT, nil, array(valid, "42"), 400, "item 1: event must be a JSON object", 1},
		} {
			t.Run(tt.name, func(t *testing.T) {
				before := ts.size(t)
				header := append([]string{"Content-Type", tt.contentType}, tt.header...)
				if tt.contentType == "" {
					header = tt.header
				}
				p := ts.do(t, "POST", "/logs", tt.body, header...).problem(t, tt.status)
				if !strings.Contains(p.Detail, tt.detail) {
					t.Fatalf("detail: got %q, want it to contain %q", p.Detail, tt.detail)
				}
				if p.Instance != "/logs" {
					t.Fatalf("instance: got %q, want /logs", p.Instance)
				}
				switch {
				case tt.item < 0 && len(p.Errors) != 0:
					t.Fatalf("errors: got %+v, want none", p.Errors)
				case tt.item >= 0 && (len(p.Errors) != 1 || p.Errors[0].Index != tt.item || p.Errors[0].Reason == ""):
					t.Fatalf("errors: got %+v, want one naming item %d", p.Errors, tt.item)
				}
				if got := ts.size(t); got != before {
					t.Fatalf("records after a rejected request: got %d, want %d", got, before)
				}
			})
		}
	})
}

func TestGetByID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ts := MustOpenServer(t, serverConfig{Backend: backend})
		r := ts.post(t, `{"id":"rec-1","action":"account.suspended","actor":{"id":"u1","type":"user"},"target":{"id":"acct-9","type":"account"},"source":{"service":"billing"},"outcome":"success","data":{"reason":"fraud","n":1.50}}`)
		r.wantStatus(t, http.StatusCreated)
		e, err := ts.Store.Get(context.Background(), "rec-1")
		if err != nil {
			t.Fatal(err)
		}

		r = ts.do(t, "GET", "/logs/rec-1", "")
		r.wantStatus(t, http.StatusOK)
		if !bytes.Equal(r.body, e.Bytes) {
			t.Fatalf("body: got %s, want the stored bytes %s", r.body, e.Bytes)
		}
		etag := `"` + tlog.RecordHash(r.body).String() + `"`
		for name, want := range map[string]string{
			"Content-Type":   "application/json",
			"ETag":           etag,
			"Cache-Control":  "public, max-age=31536000, immutable",
			"Content-Length": strconv.Itoa(len(e.Bytes)),
		} {
			if got := r.header.Get(name); got != want {
				t.Fatalf("%s: got %q, want %q", name, got, want)
			}
		}

		for _, tt := range []struct {
			inm    string
			status int
		}{
			{etag, http.StatusNotModified},
			{"W/" + etag, http.StatusNotModified},
			{`"other", ` + etag, http.StatusNotModified},
			{"*", http.StatusNotModified},
			{`"other"`, http.StatusOK},
		} {
			r := ts.do(t, "GET", "/logs/rec-1", "", "If-None-Match", tt.inm)
			r.wantStatus(t, tt.status)
			if tt.status == http.StatusNotModified && (len(r.body) != 0 || r.header.Get("ETag") != etag) {
				t.Fatalf("If-None-Match %s: got body %q, ETag %q; want no body and ETag %s", tt.inm, r.body, r.header.Get("ETag"), etag)
			}
		}

		r = ts.do(t, "HEAD", "/logs/rec-1", "")
		if r.status != http.StatusOK || len(r.body) != 0 || r.header.Get("ETag") != etag {
			t.Fatalf("HEAD: got %d, %q, ETag %q; want 200, no body, ETag %s", r.status, r.body, r.header.Get("ETag"), etag)
		}

		p := ts.do(t, "GET", "/logs/absent-1", "").problem(t, http.StatusNotFound)
		if !strings.Contains(p.Detail, `"absent-1"`) || p.Instance != "/logs/absent-1" {
			t.Fatalf("absent: got %+v, want a detail naming absent-1", p)
		}
		if got := ts.do(t, "GET", "/logs/absent-1", "").header.Get("Cache-Control"); got != "no-store" {
			t.Fatalf("404 Cache-Control: got %q, want no-store", got)
		}
		p = ts.do(t, "GET", "/logs/bad%20id", "").problem(t, http.StatusBadRequest)
		if !strings.Contains(p.Detail, `"id"`) {
			t.Fatalf("invalid id: got %q, want a detail naming the id", p.Detail)
		}
		ts.do(t, "GET", "/logs/", "").problem(t, http.StatusNotFound)
	})
}

func TestMethodNotAllowed(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	ts.post(t, eventJSON("keep", 1)).wantStatus(t, http.StatusCreated)
	original := ts.do(t, "GET", "/logs/keep", "").body
	before := ts.size(t)

	for _, tt := range []struct {
		path, allow string
		methods     []string
	}{
		{"/logs", "GET, HEAD, POST", []string{"PUT", "PATCH", "DELETE", "OPTIONS"}},
		{"/logs/keep", "GET, HEAD", []string{"PUT", "PATCH", "DELETE", "POST"}},
		{"/logs/keep/proof", "GET, HEAD", []string{"PUT", "PATCH", "DELETE", "POST"}},
		{"/checkpoint", "GET, HEAD", []string{"POST", "PUT", "DELETE"}},
		{"/checkpoint/key", "GET, HEAD", []string{"POST", "PUT"}},
		{"/proof/consistency", "GET, HEAD", []string{"POST", "DELETE"}},
		{"/export", "GET, HEAD", []string{"POST", "PUT"}},
		{"/healthz", "GET, HEAD", []string{"POST"}},
		{"/readyz", "GET, HEAD", []string{"DELETE"}},
	} {
		for _, m := range tt.methods {
			t.Run(m+" "+tt.path, func(t *testing.T) {
				r := ts.do(t, m, tt.path, eventJSON("keep", 2), "Content-Type", "application/json")
				p := r.problem(t, http.StatusMethodNotAllowed)
				if got := r.header.Get("Allow"); got != tt.allow {
					t.Fatalf("Allow: got %q, want %q", got, tt.allow)
				}
				if !strings.Contains(p.Detail, m) || !strings.Contains(p.Detail, tt.allow) {
					t.Fatalf("detail: got %q, want it to name %s and %s", p.Detail, m, tt.allow)
				}
			})
		}
	}
	if got := ts.size(t); got != before {
		t.Fatalf("records: got %d, want %d", got, before)
	}
	if got := ts.do(t, "GET", "/logs/keep", "").body; !bytes.Equal(got, original) {
		t.Fatalf("record after PUT/PATCH/DELETE: got %s, want %s", got, original)
	}

	for _, path := range []string{"/", "/nope", "/logs/a/b", "/logs/keep/proof/x", "/checkpoint/other"} {
		p := ts.do(t, "GET", path, "").problem(t, http.StatusNotFound)
		if !strings.Contains(p.Detail, path) {
			t.Fatalf("GET %s: detail %q, want it to name the path", path, p.Detail)
		}
	}
}

func TestRequestID(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	r := ts.do(t, "GET", "/nope", "", "X-Request-Id", "abc-123")
	if got := r.header.Get("X-Request-Id"); got != "abc-123" {
		t.Fatalf("X-Request-Id: got %q, want the caller's abc-123", got)
	}
	if p := r.problem(t, http.StatusNotFound); p.RequestID != "abc-123" {
		t.Fatalf("request_id: got %q, want abc-123", p.RequestID)
	}
	a := ts.do(t, "GET", "/healthz", "").header.Get("X-Request-Id")
	b := ts.do(t, "GET", "/healthz", "", "X-Request-Id", "bad id\twith spaces").header.Get("X-Request-Id")
	if a == "" || b == "" || a == b || strings.Contains(b, " ") {
		t.Fatalf("generated ids: got %q and %q, want two distinct plain ids", a, b)
	}
}

// failingStore is the real store with Get broken, to reach the internal
// error path.
type failingStore struct {
	trail.Reader
	err error
}

func (s *failingStore) Get(ctx context.Context, id string) (*trail.Entry, error) {
	return nil, s.err
}

func TestInternalErrorHidden(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))
	secret := errors.New("sqlite: get: disk I/O error at /secret/path")
	ts := MustOpenServer(t, serverConfig{Logger: logger, WrapReader: func(s trail.Reader) trail.Reader {
		return &failingStore{Reader: s, err: secret}
	}})
	r := ts.do(t, "GET", "/logs/x1", "")
	p := r.problem(t, http.StatusInternalServerError)
	if p.Detail != "internal error" || strings.Contains(string(r.body), "secret") {
		t.Fatalf("internal error body: got %s, want only \"internal error\"", r.body)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "/secret/path") || !strings.Contains(logs.String(), p.RequestID) {
		t.Fatalf("log: got %s, want the full error and request id %s", logs.String(), p.RequestID)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// seedEvent is one event of TestList's fixture.
type seedEvent struct {
	trail.Event
	seq int64
}

// filterLog is the real store, recording the Filter of every List call, so
// that a test can see what a query became.
type filterLog struct {
	trail.Reader
	mu   sync.Mutex
	last trail.Filter
}

func (r *filterLog) List(ctx context.Context, f *trail.Filter) ([]*trail.Entry, error) {
	r.mu.Lock()
	r.last = *f
	r.mu.Unlock()
	return r.Reader.List(ctx, f)
}

func (r *filterLog) lastFilter() trail.Filter {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// TestList checks GET /logs's parsing, status codes and encoding. What each
// filter selects is the store's part, and storetest checks it on every
// backend.
func TestList(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		lists := &filterLog{}
		ts := MustOpenServer(t, serverConfig{Backend: backend, WrapReader: func(r trail.Reader) trail.Reader {
			lists.Reader = r
			return lists
		},
			// Pages large enough that a page is one List call, so that the
			// last filter is the whole query's.
			Memory: httpapi.Memory{Response: 1 << 30}})
		base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		var seeds []seedEvent
		var batch []string
		tenants := []string{"acme", "globex", ""}
		actions := []string{"account.created", "account.suspended", "user.login", "accounting.closed"}
		for i := range 60 {
			tm := base.Add(time.Duration(i/3) * time.Minute) // three records share each time
			e := trail.Event{
				ID:      fmt.Sprintf("l-%02d", i),
				Time:    &tm,
				Tenant:  tenants[i%3],
				Actor:   trail.Actor{ID: fmt.Sprintf("u%d", i%4), Type: []string{"user", "service"}[i%2]},
				Action:  actions[i%4],
				Target:  &trail.Target{ID: fmt.Sprintf("t%d", i%5), Type: []string{"account", "invoice"}[i%2]},
				Source:  trail.Source{Service: []string{"billing", "auth", "web"}[i%3]},
				Outcome: []string{"success", "failure", "unknown"}[(i/2)%3],
			}
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, string(b))
			seeds = append(seeds, seedEvent{Event: e})
		}
		// Post out of time order, so that seq order differs from time order.
		slices.Reverse(batch)
		r := ts.post(t, "["+strings.Join(batch, ",")+"]")
		r.wantStatus(t, http.StatusCreated)
		var rb receiptsBody
		if err := json.Unmarshal(r.body, &rb); err != nil {
			t.Fatal(err)
		}
		for _, rc := range rb.Receipts {
			i, _ := strconv.Atoi(strings.TrimPrefix(rc.ID, "l-"))
			seeds[i].seq = rc.Seq
		}

		// want returns the ids of the seeds that match, in (time, seq) order.
		want := func(match func(e *seedEvent) bool, desc bool) []string {
			var m []seedEvent
			for _, e := range seeds {
				if match(&e) {
					m = append(m, e)
				}
			}
			slices.SortFunc(m, func(a, b seedEvent) int {
				return cmp.Or(a.Time.Compare(*b.Time), cmp.Compare(a.seq, b.seq))
			})
			if desc {
				slices.Reverse(m)
			}
			ids := make([]string, len(m))
			for i, e := range m {
				ids[i] = e.ID
			}
			return ids
		}

		t.Run("query to filter", func(t *testing.T) {
			cur := &trail.Cursor{Time: base.UnixNano(), Log: ts.Log, Seq: 7}
			t5, t10 := base.Add(5*time.Minute), base.Add(10*time.Minute)
			for _, tt := range []struct {
				query string
				want  trail.Filter
			}{
				{"", trail.Filter{Desc: true, Limit: 101}},
				{"order=asc&limit=7", trail.Filter{Limit: 8}},
				{"order=desc&limit=1000", trail.Filter{Desc: true, Limit: 1001}},
				{"tenant=acme&actor=u1&actor_type=service&target=t3&target_type=invoice&source=auth&outcome=failure",
					trail.Filter{Tenant: "acme", Actor: "u1", ActorType: "service", Target: "t3", TargetType: "invoice",
						Source: "auth", Outcome: "failure", Desc: true, Limit: 101}},
				{"action=account.created", trail.Filter{Action: "account.created", Desc: true, Limit: 101}},
				{"action=account.*", trail.Filter{Action: "account.", ActionPrefix: true, Desc: true, Limit: 101}},
				{"since=2025-03-01T13:05:00%2B01:00&until=2025-03-01T12:10:00Z", trail.Filter{Since: t5, Until: t10, Desc: true, Limit: 101}},
				{"cursor=" + cur.String(), trail.Filter{After: cur, Desc: true, Limit: 101}},
			} {
				ts.do(t, "GET", "/logs?"+tt.query, "").wantStatus(t, http.StatusOK)
				got := lists.lastFilter()
				if !got.Since.Equal(tt.want.Since) || !got.Until.Equal(tt.want.Until) {
					t.Fatalf("%s: got since %v until %v, want %v and %v", tt.query, got.Since, got.Until, tt.want.Since, tt.want.Until)
				}
				got.Since, got.Until, tt.want.Since, tt.want.Until = time.Time{}, time.Time{}, time.Time{}, time.Time{}
				got.MaxBytes = 0 // the server's bound on a page, not the query's
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("%s: got filter %+v, want %+v", tt.query, got, tt.want)
				}
			}
		})

		// Two queries through to the stored records, paging by the Link
		// header: the filters take effect, in the order asked for.
		for _, tt := range []struct {
			query string
			match func(e *seedEvent) bool
			desc  bool
		}{
			{"action=account.*&order=asc", func(e *seedEvent) bool { return strings.HasPrefix(e.Action, "account.") }, false},
			{"since=2025-03-01T13:04:00%2B01:00&until=2025-03-01T12:10:00Z", func(e *seedEvent) bool {
				return !e.Time.Before(base.Add(4*time.Minute)) && e.Time.Before(base.Add(10*time.Minute))
			}, true},
		} {
			t.Run(tt.query, func(t *testing.T) {
				wantIDs := want(tt.match, tt.desc)
				got := listAll(t, ts, "/logs?"+tt.query+"&limit=7", nil)
				if !slices.Equal(got, wantIDs) {
					t.Fatalf("ids: got %v, want %v", got, wantIDs)
				}
			})
		}

		t.Run("page shape", func(t *testing.T) {
			page, r := getPage[json.RawMessage](t, ts, "/logs?order=asc&limit=2&tenant=acme")
			ids := want(func(e *seedEvent) bool { return e.Tenant == "acme" }, false)
			for i, raw := range page.Events {
				e, err := ts.Store.Get(context.Background(), ids[i])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(raw, e.Bytes) {
					t.Fatalf("event %d: got %s, want the stored bytes %s", i, raw, e.Bytes)
				}
			}
			if page.Next == nil {
				t.Fatal("next: got null, want a cursor")
			}
			link := r.header.Get("Link")
			m := regexp.MustCompile(`^<(/logs\?[^>]+)>; rel="next"$`).FindStringSubmatch(link)
			if m == nil {
				t.Fatalf("Link: got %q, want <...>; rel=\"next\"", link)
			}
			u, _ := url.Parse(m[1])
			if q := u.Query(); q.Get("cursor") != *page.Next || q.Get("tenant") != "acme" || q.Get("order") != "asc" || q.Get("limit") != "2" {
				t.Fatalf("Link query: got %v, want the filters kept and cursor %s", q, *page.Next)
			}

			r = ts.do(t, "GET", "/logs?tenant=nobody", "")
			r.wantStatus(t, http.StatusOK)
			if got, want := strings.TrimSpace(string(r.body)), `{"events":[],"next":null}`; got != want {
				t.Fatalf("empty page: got %s, want %s", got, want)
			}
			if link := r.header.Get("Link"); link != "" {
				t.Fatalf("Link on the last page: got %q, want none", link)
			}
		})

		t.Run("limits", func(t *testing.T) {
			for _, tt := range []struct {
				limit string
				n     int
			}{{"1", 1}, {"60", 60}, {"1000", 60}, {"", 60}} {
				q := "/logs"
				if tt.limit != "" {
					q += "?limit=" + tt.limit
				}
				page, _ := getPage[json.RawMessage](t, ts, q)
				if len(page.Events) != tt.n {
					t.Fatalf("%s: got %d events, want %d", q, len(page.Events), tt.n)
				}
			}
		})

		t.Run("bad parameters", func(t *testing.T) {
			for _, tt := range []struct{ query, detail string }{
				{"limit=0", `"limit"`},
				{"limit=1001", `"limit"`},
				{"limit=-5", `"limit"`},
				{"limit=ten", `"limit"`},
				{"order=sideways", `"order"`},
				{"since=yesterday", `"since"`},
				{"until=2025-01-01", `"until"`},
				{"cursor=notacursor", `"cursor"`},
				{"action=account*", `"action"`},
				{"outcome=maybe", `"outcome"`},
				{"colour=red&size=9", `"colour", "size"`},
				{"tenant=a&tenant=b", `"tenant" is given 2 times`},
			} {
				p := ts.do(t, "GET", "/logs?"+tt.query, "").problem(t, http.StatusBadRequest)
				if !strings.Contains(p.Detail, tt.detail) {
					t.Fatalf("%s: detail %q, want it to contain %s", tt.query, p.Detail, tt.detail)
				}
			}
		})
	})
}

// listPage is one page of GET /logs, its events decoded as E.
type listPage[E any] struct {
	Events []E     `json:"events"`
	Next   *string `json:"next"`
}

// getPage GETs path, wants 200, and returns the page and the answer.
func getPage[E any](tb testing.TB, ts *testServer, path string) (listPage[E], *response) {
	tb.Helper()
	r := ts.do(tb, "GET", path, "")
	r.wantStatus(tb, http.StatusOK)
	var page listPage[E]
	if err := json.Unmarshal(r.body, &page); err != nil {
		tb.Fatal(err)
	}
	return page, r
}

// listAll pages through path by the Link header and returns the ids seen.
// If each is set, it is called with every record.
func listAll(tb testing.TB, ts *testServer, path string, each func(trail.Record)) []string {
	tb.Helper()
	var ids []string
	for pages := 0; path != ""; pages++ {
		if pages > 10000 {
			tb.Fatal("paging does not end")
		}
		page, r := getPage[trail.Record](tb, ts, path)
		for _, rec := range page.Events {
			ids = append(ids, rec.ID)
			if each != nil {
				each(rec)
			}
		}
		link := r.header.Get("Link")
		if (page.Next == nil) != (link == "") {
			tb.Fatalf("next %v and Link %q: want both or neither", page.Next, link)
		}
		path = ""
		if link != "" {
			path = strings.TrimPrefix(strings.TrimSuffix(link, `>; rel="next"`), "<")
		}
	}
	return ids
}

// TestListPagingWhileWriting runs on SQLite only: on the FerretDB test
// server every list query decodes the whole collection (docs/SCALING.md §9),
// and e2e.TestScaleOut pages through MongoDB while replicas write.
func TestListPagingWhileWriting(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	// Old times, so that asc paging meets the concurrent writes only at the
	// end; desc paging never meets them.
	var seeded []string
	for b := range 5 {
		var events []string
		for i := range 50 {
			n := b*50 + i
			events = append(events, fmt.Sprintf(`{"id":"seed-%d","time":"2024-01-01T00:%02d:00Z","tenant":"p","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`, n, n%60))
			seeded = append(seeded, fmt.Sprintf("seed-%d", n))
		}
		ts.post(t, "["+strings.Join(events, ",")+"]").wantStatus(t, http.StatusCreated)
	}
	ts.post(t, `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"tenant":"other"}`).wantStatus(t, http.StatusCreated)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written atomic.Int64
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"id":"live-%d-%d","tenant":"p","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`, w, i)
				r, err := ts.send("POST", "/logs", body, "Content-Type", "application/json")
				if err != nil {
					t.Errorf("concurrent POST: %v", err)
					return
				}
				if r.status != http.StatusCreated {
					t.Errorf("concurrent POST: got %d, want 201", r.status)
					return
				}
				written.Add(1)
			}
		})
	}

	for _, order := range []string{"asc", "desc"} {
		t.Run(order, func(t *testing.T) {
			seen := map[string]int{}
			var prev *trail.Cursor
			ids := listAll(t, ts, "/logs?tenant=p&limit=9&order="+order, func(rec trail.Record) {
				c := &trail.Cursor{Time: rec.Time.UnixNano(), Log: rec.Log, Seq: rec.Seq}
				if prev != nil && (order == "asc") != prev.Less(c) {
					t.Errorf("%s order broken: %+v then %+v", order, prev, c)
				}
				prev = c
				if rec.Tenant != "p" {
					t.Errorf("record %s of tenant %q in a tenant=p listing", rec.ID, rec.Tenant)
				}
			})
			for _, id := range ids {
				seen[id]++
				if seen[id] > 1 {
					t.Fatalf("%s seen twice", id)
				}
			}
			for _, id := range seeded {
				if seen[id] != 1 {
					t.Fatalf("%s: seen %d times, want once", id, seen[id])
				}
			}
		})
	}
	close(stop)
	wg.Wait()
	t.Logf("%d concurrent writes landed while paging", written.Load())
}

func TestListNDJSON(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	const n = 2500 // more than one internal page
	for from := 0; from < n; from += 1000 {
		ts.post(t, batchJSON(from, min(1000, n-from))).wantStatus(t, http.StatusCreated)
	}
	ts.post(t, `{"action":"user.login","actor":{"id":"x"},"source":{"service":"other"}}`).wantStatus(t, http.StatusCreated)

	for _, tt := range []struct {
		query, accept string
		want          int
	}{
		{"?source=test", "application/x-ndjson", n},
		{"?source=test&order=asc", "application/x-ndjson", n},
		{"", "application/x-ndjson", n + 1},
		{"?source=test&limit=1500", "application/x-ndjson", 1500},
		{"?action=user.*", "application/jsonl, application/json;q=0.5", 1},
		{"?source=nothing", "application/ndjson", 0},
	} {
		t.Run(tt.query+" "+tt.accept, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ts.URL+"/logs"+tt.query, nil)
			req.Header.Set("Accept", tt.accept)
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
				t.Fatalf("got %d %q, want 200 application/x-ndjson", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(nil, 1<<20)
			seen := map[string]bool{}
			for sc.Scan() {
				var rec trail.Record
				if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
					t.Fatalf("line %d: %v", len(seen), err)
				}
				if seen[rec.ID] {
					t.Fatalf("%s streamed twice", rec.ID)
				}
				seen[rec.ID] = true
				if len(seen)%500 == 1 {
					e, err := ts.Store.Get(context.Background(), rec.ID)
					if err != nil || !bytes.Equal(e.Bytes, sc.Bytes()) {
						t.Fatalf("line for %s: got %s, want the stored bytes (%v)", rec.ID, sc.Bytes(), err)
					}
				}
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			if len(seen) != tt.want {
				t.Fatalf("lines: got %d, want %d", len(seen), tt.want)
			}
		})
	}
	// JSON stays the default for */* and for JSON preferred over NDJSON.
	for _, accept := range []string{"*/*", "application/json, application/x-ndjson;q=0.5", "text/html"} {
		r := ts.do(t, "GET", "/logs?limit=1", "", "Accept", accept)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("Accept %s: got %d %q, want 200 application/json", accept, r.status, r.header.Get("Content-Type"))
		}
	}
	ts.do(t, "GET", "/logs?limit=0", "", "Accept", "application/x-ndjson").problem(t, http.StatusBadRequest)
}

// waitCheckpoint polls GET /checkpoint until it states size, and returns
// the note. It does not time anything: the deadline only stops a hung test.
func waitCheckpoint(tb testing.TB, ts *testServer, size int64) []byte {
	tb.Helper()
	v, err := note.NewVerifier(ts.Verifier)
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := ts.do(tb, "GET", "/checkpoint", "")
		if r.status == http.StatusOK {
			n, err := note.Open(r.body, note.VerifierList(v))
			if err != nil {
				tb.Fatalf("checkpoint note: %v", err)
			}
			cp, err := trail.ParseCheckpoint([]byte(n.Text))
			if err != nil {
				tb.Fatal(err)
			}
			if cp.Size == size {
				return r.body
			} else if cp.Size > size {
				tb.Fatalf("checkpoint size: got %d, want %d", cp.Size, size)
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no checkpoint of size %d: last answer %d %s", size, r.status, r.body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// openNote verifies a checkpoint note with the verifier key and parses it.
func openNote(tb testing.TB, vkey string, msg []byte) trail.Checkpoint {
	tb.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		tb.Fatalf("note.Open: %v", err)
	}
	cp, err := trail.ParseCheckpoint([]byte(n.Text))
	if err != nil {
		tb.Fatal(err)
	}
	return cp
}

// TestProofs checks checkpoints and proofs as an outside client would: only
// HTTP answers and the verifier key.
func TestProofs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ts := MustOpenServer(t, serverConfig{Backend: backend})

		r := ts.do(t, "GET", "/checkpoint/key", "")
		r.wantStatus(t, http.StatusOK)
		vkey := string(r.body)
		if vkey != ts.Verifier || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Fatalf("key: got %q (%s), want %q as text/plain", vkey, r.header.Get("Content-Type"), ts.Verifier)
		}
		// Nothing is signed yet.
		ts.do(t, "GET", "/checkpoint", "").problem(t, http.StatusNotFound)
		ts.do(t, "GET", "/export", "").problem(t, http.StatusNotFound)
		if h, records := getExport(t, ts, "?to=end"); h.To != 0 || h.Checkpoint != "" || len(records) != 0 {
			t.Fatalf("export of an empty log: got %+v and %d records, want an empty range and no checkpoint", h, len(records))
		}

		var ids []string
		post := func(from, n int) {
			r := ts.post(t, batchJSON(from, n))
			r.wantStatus(t, http.StatusCreated)
			var rb receiptsBody
			if err := json.Unmarshal(r.body, &rb); err != nil {
				t.Fatal(err)
			}
			for _, rc := range rb.Receipts {
				ids = append(ids, rc.ID)
			}
		}
		post(0, 1)
		note1 := waitCheckpoint(t, ts, 1)
		post(1, 12)
		note13 := waitCheckpoint(t, ts, 13)
		post(13, 24)
		note37 := waitCheckpoint(t, ts, 37)
		cp1, cp13, cp37 := openNote(t, vkey, note1), openNote(t, vkey, note13), openNote(t, vkey, note37)
		if cp37.Origin != "trail.test/"+ts.Log {
			t.Fatalf("origin: got %q, want trail.test/%s", cp37.Origin, ts.Log)
		}
		r = ts.do(t, "GET", "/checkpoint?log="+ts.Log, "")
		r.wantStatus(t, http.StatusOK)
		if !bytes.Equal(r.body, note37) || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Fatalf("checkpoint?log=: got %q (%s), want the latest note as text/plain", r.body, r.header.Get("Content-Type"))
		}

		checkRecord := func(t *testing.T, id, query string, cp trail.Checkpoint) {
			t.Helper()
			r := ts.do(t, "GET", "/logs/"+id+"/proof"+query, "")
			r.wantStatus(t, http.StatusOK)
			var p trail.RecordProof
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatalf("proof %s: %v", r.body, err)
			}
			got := openNote(t, vkey, []byte(p.Checkpoint))
			if got != cp || p.Size != cp.Size || p.Log != ts.Log || p.ID != id {
				t.Fatalf("proof of %s%s: got checkpoint %+v size %d log %s, want %+v", id, query, got, p.Size, p.Log, cp)
			}
			rec := ts.do(t, "GET", "/logs/"+id, "").body
			if leaf := tlog.RecordHash(rec); leaf != p.LeafHash {
				t.Fatalf("leaf_hash: got %v, want the hash of the record's bytes %v", p.LeafHash, leaf)
			}
			if err := tlog.CheckRecord(p.Proof, p.Size, got.Hash, p.Seq, p.LeafHash); err != nil {
				t.Fatalf("CheckRecord %s seq %d size %d: %v", id, p.Seq, p.Size, err)
			}
			if !strings.Contains(string(r.body), `"proof":[`) {
				t.Fatalf("proof member: got %s, want a JSON array", r.body)
			}
		}
		t.Run("record", func(t *testing.T) {
			for _, seq := range []int{0, 1, 7, 12, 13, 30, 36} {
				checkRecord(t, ids[seq], "", cp37)
			}
			checkRecord(t, ids[0], "?size=1", cp1)
			for _, seq := range []int{0, 5, 12} {
				checkRecord(t, ids[seq], "?size=13", cp13)
			}
			r := ts.do(t, "GET", "/logs/"+ids[0]+"/proof?size=13", "")
			if got := r.header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
				t.Fatalf("Cache-Control of a proof at a fixed size: got %q", got)
			}
		})

		t.Run("consistency", func(t *testing.T) {
			for _, tt := range []struct {
				from, to trail.Checkpoint
				query    string
			}{
				{cp1, cp13, "?from=1&to=13"},
				{cp13, cp37, "?from=13&to=37&log=" + ts.Log},
				{cp1, cp37, "?from=1"},
				{cp13, cp13, "?from=13&to=13"},
			} {
				r := ts.do(t, "GET", "/proof/consistency"+tt.query, "")
				r.wantStatus(t, http.StatusOK)
				var p struct {
					Log      string
					From, To int64
					Proof    tlog.TreeProof
				}
				if err := json.Unmarshal(r.body, &p); err != nil {
					t.Fatal(err)
				}
				if p.Log != ts.Log || p.From != tt.from.Size || p.To != tt.to.Size {
					t.Fatalf("%s: got %s/%d/%d, want %s/%d/%d", tt.query, p.Log, p.From, p.To, ts.Log, tt.from.Size, tt.to.Size)
				}
				if err := tlog.CheckTree(p.Proof, p.To, tt.to.Hash, p.From, tt.from.Hash); err != nil {
					t.Fatalf("CheckTree %s: %v", tt.query, err)
				}
			}
		})

		t.Run("bad requests", func(t *testing.T) {
			for _, tt := range []struct {
				path   string
				status int
				detail string
			}{
				{"/logs/" + ids[0] + "/proof?size=0", 400, `"size"`},
				{"/logs/" + ids[0] + "/proof?size=x", 400, `"size"`},
				{"/logs/" + ids[20] + "/proof?size=13", 400, "seq 20"},
				{"/logs/" + ids[0] + "/proof?size=5", 404, "no signed checkpoint of log"},
				{"/logs/" + ids[0] + "/proof?depth=2", 400, `"depth"`},
				{"/logs/absent/proof", 404, `"absent"`},
				{"/logs/bad%20id/proof", 400, `"id"`},
				{"/proof/consistency?to=5", 400, `"from" is required`},
				{"/proof/consistency?from=0&to=5", 400, `"from"`},
				{"/proof/consistency?from=9&to=5", 400, `"from" (9) is above "to" (5)`},
				{"/proof/consistency?from=1&to=38", 400, `"to" (38)`},
				{"/proof/consistency?from=1&to=x", 400, `"to"`},
				{"/proof/consistency?from=1&log=nolog", 404, `"nolog" has no signed checkpoint`},
				{"/checkpoint?log=nolog", 404, `"nolog" has no signed checkpoint`},
				{"/checkpoint?since=1", 400, `"since"`},
				{"/checkpoint/key?x=1", 400, `"x"`},
			} {
				p := ts.do(t, "GET", tt.path, "").problem(t, tt.status)
				if !strings.Contains(p.Detail, tt.detail) {
					t.Fatalf("%s: detail %q, want it to contain %s", tt.path, p.Detail, tt.detail)
				}
			}
		})
	})
}

func TestProofNotCovered(t *testing.T) {
	// An hour between checkpoints: the first commit is signed at once, the
	// next not until Close.
	ts := MustOpenServer(t, serverConfig{CheckpointInterval: time.Hour})
	ts.post(t, eventJSON("first", 1)).wantStatus(t, http.StatusCreated)
	waitCheckpoint(t, ts, 1)
	ts.post(t, eventJSON("second", 2)).wantStatus(t, http.StatusCreated)

	r := ts.do(t, "GET", "/logs/second/proof", "")
	p := r.problem(t, http.StatusNotFound)
	if p.Code != "not_covered" || !strings.Contains(p.Detail, "not yet covered") || r.header.Get("Retry-After") != "1" {
		t.Fatalf("not covered: got %+v, Retry-After %q; want code not_covered and Retry-After 1", p, r.header.Get("Retry-After"))
	}
	ts.do(t, "GET", "/logs/first/proof", "").wantStatus(t, http.StatusOK)
	ts.do(t, "GET", "/proof/consistency?from=1&to=2", "").problem(t, http.StatusBadRequest)
}

func TestSigningOff(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{NoSigning: true})
	ts.post(t, eventJSON("a1", 1)).wantStatus(t, http.StatusCreated)
	for _, path := range []string{"/checkpoint", "/checkpoint/key", "/logs/a1/proof", "/proof/consistency?from=1&to=1"} {
		p := ts.do(t, "GET", path, "").problem(t, http.StatusNotFound)
		if !strings.Contains(p.Detail, "signing is off") {
			t.Fatalf("%s: detail %q, want it to say signing is off", path, p.Detail)
		}
	}
	// An export still works: every record, no checkpoint.
	h, records := getExport(t, ts, "")
	if h.To != 1 || h.Checkpoint != "" || len(records) != 1 {
		t.Fatalf("export without signing: got %+v and %d records, want to=1, no checkpoint, 1 record", h, len(records))
	}
}

// exportHead mirrors an export's first line.
type exportHead struct {
	Format     int    `json:"trail_export"`
	Log        string `json:"log"`
	From       int64  `json:"from"`
	To         int64  `json:"to"`
	Checkpoint string `json:"checkpoint"`
}

// getExport fetches GET /export with the query and splits it into its
// header and record lines.
func getExport(tb testing.TB, ts *testServer, query string) (exportHead, [][]byte) {
	tb.Helper()
	r := ts.do(tb, "GET", "/export"+query, "")
	r.wantStatus(tb, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		tb.Fatalf("Content-Type: got %q, want application/x-ndjson", ct)
	}
	if len(r.body) == 0 || r.body[len(r.body)-1] != '\n' {
		tb.Fatalf("export %q does not end in a newline", r.body)
	}
	lines := bytes.Split(r.body[:len(r.body)-1], []byte("\n"))
	var h exportHead
	if err := json.Unmarshal(lines[0], &h); err != nil || h.Format != 1 {
		tb.Fatalf("export header %s: %v", lines[0], err)
	}
	return h, lines[1:]
}

func TestExport(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{CheckpointInterval: time.Hour}) // signs the first commit, then only at Close
	ts.post(t, batchJSON(0, 10)).wantStatus(t, http.StatusCreated)
	waitCheckpoint(t, ts, 10)
	ts.post(t, batchJSON(10, 5)).wantStatus(t, http.StatusCreated)

	h, records := getExport(t, ts, "")
	if h.Log != ts.Log || h.From != 0 || h.To != 10 || len(records) != 10 {
		t.Fatalf("default export: got %+v and %d records, want log %s, 0 to 10, 10 records", h, len(records), ts.Log)
	}
	cp := openNote(t, ts.Verifier, []byte(h.Checkpoint))
	// An auditor's check: rebuild the tree from the exported bytes alone.
	audit := merkle.NewAudit(ts.Log)
	for i, rec := range records {
		e, err := ts.Store.Get(context.Background(), mustRecord(t, rec).ID)
		if err != nil || e.Seq != int64(i) || !bytes.Equal(e.Bytes, rec) {
			t.Fatalf("line %d: got %s, want the stored bytes of seq %d (%v)", i, rec, i, err)
		}
		if err := audit.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	root, err := audit.Root(int64(len(records)))
	if err != nil || root != cp.Hash || cp.Size != 10 {
		t.Fatalf("root of the export: got %v (%v), want the checkpoint's %v of size %d", root, err, cp.Hash, cp.Size)
	}

	for _, tt := range []struct {
		query    string
		from, to int64
	}{
		{"?to=end", 0, 15},
		{"?from=10&to=end", 10, 15},
		{"?from=3&to=7&log=" + ts.Log, 3, 7},
		{"?from=15&to=end", 15, 15},
	} {
		h, records := getExport(t, ts, tt.query)
		if h.From != tt.from || h.To != tt.to || int64(len(records)) != tt.to-tt.from || h.Checkpoint == "" {
			t.Fatalf("%s: got %+v and %d records, want %d to %d with the checkpoint", tt.query, h, len(records), tt.from, tt.to)
		}
		for i, rec := range records {
			if seq := mustRecord(t, rec).Seq; seq != tt.from+int64(i) {
				t.Fatalf("%s: line %d has seq %d, want %d", tt.query, i, seq, tt.from+int64(i))
			}
		}
	}

	for _, tt := range []struct {
		query  string
		status int
		detail string
	}{
		{"?from=x", 400, `"from"`},
		{"?from=-1", 400, `"from"`},
		{"?to=16", 400, `"to" (16) is above the size`},
		{"?to=later", 400, `"to"`},
		{"?from=8&to=5", 400, `"from" (8) is above "to" (5)`},
		{"?log=nolog&to=end", 404, `"nolog"`},
		{"?size=3", 400, `"size"`},
	} {
		p := ts.do(t, "GET", "/export"+tt.query, "").problem(t, tt.status)
		if !strings.Contains(p.Detail, tt.detail) {
			t.Fatalf("%s: detail %q, want it to contain %s", tt.query, p.Detail, tt.detail)
		}
	}
}

// TestExportShowsForgedRow appends a well-formed record straight into the
// database file, behind the running server's back: an export of every
// stored record must show it, so that an auditor finds it uncovered.
func TestExportShowsForgedRow(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	ts.post(t, batchJSON(0, 3)).wantStatus(t, http.StatusCreated)
	waitCheckpoint(t, ts, 3)

	ctx := context.Background()
	forger, err := sqlite.Open(sqlite.Config{Path: ts.Path, Log: ts.Log})
	if err != nil {
		t.Fatal(err)
	}
	e, err := trail.ParseEvent([]byte(`{"action":"account.suspended","actor":{"id":"mallory"},"source":{"service":"admin"}}`), trail.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	p, err := trail.Prepare(e, time.Now(), func() string { return "forged-1" })
	if err != nil {
		t.Fatal(err)
	}
	entry := p.Entry(ts.Log, 3)
	if err := merkle.NewTree(3, merkle.Reader(ctx, forger, ts.Log)).Append([]*trail.Entry{entry}); err != nil {
		t.Fatal(err)
	}
	if err := forger.Append(ctx, []*trail.Entry{entry}); err != nil {
		t.Fatal(err)
	}
	forger.Close()

	if h, records := getExport(t, ts, ""); h.To != 3 || len(records) != 3 {
		t.Fatalf("default export: got to=%d and %d records, want what the checkpoint covers, 3", h.To, len(records))
	}
	h, records := getExport(t, ts, "?from=3&to=end")
	if h.To != 4 || len(records) != 1 || mustRecord(t, records[0]).ID != "forged-1" {
		t.Fatalf("export to=end: got %+v and %d records, want the forged record at seq 3", h, len(records))
	}
}

func mustRecord(tb testing.TB, b []byte) trail.Record {
	tb.Helper()
	var r trail.Record
	if err := json.Unmarshal(b, &r); err != nil {
		tb.Fatalf("record %s: %v", b, err)
	}
	return r
}

// TestReadsLeaveTheLeaseAlone checks, on MongoDB, that no read endpoint
// changes a log document (the lease, the committed size, a batch in
// doubt), even when the lease looks lapsed: reads go through a trail.Reader
// and the ingester's own head, never through the writer's Store.Head, which
// would then renew the lease or claim another log. mongo's
// TestReadsLeaveTheWriterAlone checks the Reader itself.
func TestReadsLeaveTheLeaseAlone(t *testing.T) {
	// A lease of an hour is not renewed during the test; the clock moves
	// past it once the writes are done.
	var ahead atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	ts := MustOpenServer(t, serverConfig{Backend: "mongo", LeaseTTL: time.Hour, Now: now})
	ts.post(t, batchJSON(0, 5)).wantStatus(t, http.StatusCreated)
	waitCheckpoint(t, ts, 5)
	var rb receiptsBody
	r := ts.post(t, batchJSON(5, 1))
	r.wantStatus(t, http.StatusCreated)
	if err := json.Unmarshal(r.body, &rb); err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(t, ts, 6)
	id := rb.Receipts[0].ID

	c, err := mongodriver.Connect(options.Client().ApplyURI(ts.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	logs := c.Database(strings.TrimPrefix(mustParseURL(t, ts.URI).Path, "/")).Collection("logs")
	snapshot := func() []bson.M {
		t.Helper()
		cur, err := logs.Find(t.Context(), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.M
		if err := cur.All(t.Context(), &docs); err != nil {
			t.Fatal(err)
		}
		if len(docs) == 0 {
			t.Fatal("log documents: got none, want the claimed log's")
		}
		return docs
	}
	before := snapshot()
	ahead.Store(int64(2 * time.Hour))
	for _, path := range []string{
		"/logs", "/logs?action=account.*&limit=2", "/logs/" + id, "/logs/" + id + "/proof",
		"/logs/" + id + "/proof?size=6", "/proof/consistency?from=5", "/export", "/export?to=end&log=" + ts.Log,
		"/checkpoint", "/checkpoint/key", "/healthz",
	} {
		ts.do(t, "GET", path, "").wantStatus(t, http.StatusOK)
	}
	ts.do(t, "GET", "/logs", "", "Accept", "application/x-ndjson").wantStatus(t, http.StatusOK)
	ready := ts.do(t, "GET", "/readyz", "")
	if after := snapshot(); !reflect.DeepEqual(after, before) {
		t.Fatalf("log documents after the reads: got %v, want them unchanged: %v", after, before)
	}
	// The store says the lease is not renewed, rather than renewing it.
	ready.wantStatus(t, http.StatusServiceUnavailable)
}

func mustParseURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func TestHealth(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	for _, path := range []string{"/healthz", "/readyz"} {
		r := ts.do(t, "GET", path, "")
		r.wantStatus(t, http.StatusOK)
		if r.header.Get("Content-Type") != "application/json" || !strings.Contains(string(r.body), `"status"`) {
			t.Fatalf("%s: got %s %s, want a JSON status", path, r.header.Get("Content-Type"), r.body)
		}
	}

	// A closed ingester takes no writes: not ready, and POST answers 503
	// with Retry-After; liveness and reads go on.
	if err := ts.Ingester.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := ts.do(t, "GET", "/readyz", "")
	p := r.problem(t, http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "ingest is not ready") || r.header.Get("Retry-After") == "" {
		t.Fatalf("readyz: got %+v, Retry-After %q; want the reason and Retry-After", p, r.header.Get("Retry-After"))
	}
	r = ts.post(t, eventJSON("late", 1))
	r.problem(t, http.StatusServiceUnavailable)
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Fatalf("POST Retry-After: got %q, want 1", got)
	}
	ts.do(t, "GET", "/healthz", "").wantStatus(t, http.StatusOK)
	ts.do(t, "GET", "/logs", "").wantStatus(t, http.StatusOK)
}

// BenchmarkPostBatch posts batches of 100 events from concurrent clients
// through the whole stack: HTTP, parsing, group commit, SQLite with a synced
// commit, Merkle hashes and checkpoints.
func BenchmarkPostBatch(b *testing.B) {
	ts := MustOpenServer(b, serverConfig{CheckpointInterval: time.Second})
	body := batchJSON(0, 100)
	b.SetBytes(int64(len(body)))
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := ts.send("POST", "/logs", body, "Content-Type", "application/json")
			if err != nil {
				b.Error(err)
				return
			}
			if r.status != http.StatusCreated {
				b.Errorf("got %d, want 201", r.status)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
