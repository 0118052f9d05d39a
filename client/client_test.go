package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/testserver"
	"github.com/trail-audit/trail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// Server is a real trail server on loopback (internal/testserver).
type Server = testserver.Server

// MustOpenServer starts a real trail server on loopback, as cmd/trail serve
// builds it (internal/testserver). wrap, if not nil, wraps its handler, so
// that a test can put faults in front of the real API.
func MustOpenServer(tb testing.TB, wrap func(http.Handler) http.Handler) *Server {
	tb.Helper()
	return MustOpenServerKey(tb, "", wrap)
}

// MustOpenServerKey starts a server that signs with the key in keyFile
// (created if missing; "" for one of its own), so that two servers can
// sign as one log.
func MustOpenServerKey(tb testing.TB, keyFile string, wrap func(http.Handler) http.Handler) *Server {
	tb.Helper()
	return testserver.MustOpen(tb, testserver.Config{
		CheckpointInterval: 10 * time.Millisecond, KeyFile: keyFile, WrapHandler: wrap,
	})
}

// newClient returns a client of a server of its own (MustOpenServer).
func newClient(tb testing.TB) *client.Client {
	tb.Helper()
	return client.New(MustOpenServer(tb, nil).URL)
}

// mustPush pushes the events with c and fails tb on an error.
func mustPush(tb testing.TB, c *client.Client, events ...*trail.Event) *trail.Result {
	tb.Helper()
	res, err := c.Push(context.Background(), events...)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// fast makes retries quick for tests.
var fast = client.WithBackoff(time.Millisecond, 5*time.Millisecond)

func newEvent(action string) *trail.Event {
	return &trail.Event{
		Actor:  trail.Actor{ID: "user-1", Type: "user"},
		Action: action,
		Source: trail.Source{Service: "client-test"},
		Data:   json.RawMessage(`{"k":"v"}`),
	}
}

func TestPushGet(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()

	e := newEvent("account.created")
	res := mustPush(t, c, e)
	if !res.Created || len(res.Receipts) != 1 {
		t.Fatalf("got %+v, want one created receipt", res)
	}
	r := res.Receipts[0]
	if u, err := uuid.Parse(e.ID); err != nil || u.Version() != 7 {
		t.Fatalf("event id %q: got %v, want a UUIDv7", e.ID, err)
	}
	if r.ID != e.ID || r.Seq != 0 || r.Log == "" {
		t.Fatalf("got receipt %+v, want id %s at seq 0", r, e.ID)
	}

	b, leaf, err := c.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if leaf != r.LeafHash || tlog.RecordHash(b) != r.LeafHash {
		t.Fatalf("leaf hash: got %s (bytes hash to %s), want %s", leaf, tlog.RecordHash(b), r.LeafHash)
	}
	var rec trail.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.ID != e.ID || rec.Action != "account.created" || string(rec.Data) != `{"k":"v"}` {
		t.Fatalf("got record %s", b)
	}
}

func TestPushIdempotent(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()

	e := newEvent("account.suspended")
	first := mustPush(t, c, e)
	again := mustPush(t, c, e)
	if again.Created || again.Receipts[0] != first.Receipts[0] {
		t.Fatalf("replay: got %+v, want the original receipt %+v and Created false", again, first)
	}

	other := newEvent("account.deleted")
	other.ID = e.ID
	_, err := c.Push(ctx, other)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusConflict {
		t.Fatalf("conflict: got %v, want a 409 *client.Error", err)
	}
	if got := trail.ErrorCode(err); got != trail.ECONFLICT {
		t.Fatalf("trail.ErrorCode: got %q, want %q", got, trail.ECONFLICT)
	}
	if ce.RequestID == "" || ce.Detail == "" {
		t.Fatalf("got problem %+v, want a detail and a request id", ce)
	}
}

func TestPushBatch(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()

	events := []*trail.Event{newEvent("a.one"), newEvent("a.two"), newEvent("a.three")}
	events[1].ID = "my-own-id"
	res := mustPush(t, c, events...)
	for i, r := range res.Receipts {
		if r.Seq != int64(i) || r.ID != events[i].ID {
			t.Fatalf("receipt %d: got %+v, want seq %d id %s", i, r, i, events[i].ID)
		}
	}

	// Raw events: the legacy shape, and objects with and without an id.
	raws := []json.RawMessage{
		json.RawMessage(`{"user_id":"u1","event_type":"User.Login","src_service":"auth","app_data":{"x":1}}`),
		json.RawMessage(`{"id":"raw-2","action":"b.two","actor":{"id":"u"},"source":{"service":"s"}}`),
		json.RawMessage(` {"action":"b.three","actor":{"id":"u"},"source":{"service":"s"}} `),
	}
	res, err := c.PushRaw(ctx, raws...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Receipts[1].ID != "raw-2" || res.Receipts[0].ID == "" || res.Receipts[2].ID == "" {
		t.Fatalf("got receipts %+v", res.Receipts)
	}
	b, _, err := c.Get(ctx, res.Receipts[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var rec trail.Record
	json.Unmarshal(b, &rec)
	if rec.Action != "user.login" || rec.Actor.ID != "u1" || string(rec.Data) != `{"app":{"x":1}}` {
		t.Fatalf("legacy event: got %s", b)
	}
	// Pushing the same raw events again replays them: ids were added once.
	if _, err := c.PushRaw(ctx, raws[1]); err != nil {
		t.Fatal(err)
	}
}

func TestPushEncoded(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	body := []byte(`[{"id":"enc-1","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}},{"id":"enc-2","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}]`)
	prefix := []byte("kept:")
	answer, created, err := c.PushEncoded(ctx, prefix, body, true)
	if err != nil || !created {
		t.Fatalf("got created %v, %v; want created", created, err)
	}
	if !bytes.HasPrefix(answer, prefix) {
		t.Fatalf("got answer %q, want it appended to %q", answer, prefix)
	}
	var a struct{ Receipts []trail.Receipt }
	if err := json.Unmarshal(answer[len(prefix):], &a); err != nil || len(a.Receipts) != 2 || a.Receipts[1].ID != "enc-2" {
		t.Fatalf("got receipts %s (%v), want two, the second for enc-2", answer, err)
	}
	if _, created, err = c.PushEncoded(ctx, nil, body, true); err != nil || created {
		t.Fatalf("replay: got created %v, %v; want a replay", created, err)
	}
	_, _, err = c.PushEncoded(ctx, nil, []byte(`{"action":"a.b"}`), false)
	if got := trail.ErrorCode(err); got != trail.EINVALID {
		t.Fatalf("invalid event: got %v, want %s", err, trail.EINVALID)
	}
}

func TestPushInvalid(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()

	bad := newEvent("Not An Action")
	_, err := c.Push(ctx, newEvent("ok.one"), bad)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusBadRequest {
		t.Fatalf("got %v, want a 400 *client.Error", err)
	}
	if len(ce.Items) != 1 || ce.Items[0].Index != 1 || !strings.Contains(ce.Items[0].Reason, "action") {
		t.Fatalf("got items %+v, want item 1 naming \"action\"", ce.Items)
	}
	if trail.ErrorCode(err) != trail.EINVALID || !strings.Contains(err.Error(), "item 1") {
		t.Fatalf("got %q (code %s)", err, trail.ErrorCode(err))
	}
	// The batch is atomic: nothing was stored.
	p, err := c.List(ctx, client.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 0 {
		t.Fatalf("got %d records after a rejected batch, want 0", len(p.Events))
	}
	if _, err := c.PushRaw(ctx, json.RawMessage(`{"action":`)); trail.ErrorCode(err) != trail.EINVALID {
		t.Fatalf("malformed: got %v", err)
	}
}

func TestGetNotFound(t *testing.T) {
	c := newClient(t)
	_, _, err := c.Get(context.Background(), "no-such-id")
	if !errors.Is(err, trail.ErrNotFound) {
		t.Fatalf("got %v, want trail.ErrNotFound", err)
	}
	if errors.Is(err, trail.ErrUnavailable) {
		t.Fatal("a 404 matches trail.ErrUnavailable")
	}
}

func TestListAndStream(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()

	base := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	var want []string
	for i := range 25 {
		e := newEvent("page.event")
		if i%5 == 0 {
			e.Action = "other.event"
		}
		tm := base.Add(time.Duration(i) * time.Second)
		e.Time = &tm
		e.Tenant = "acme"
		if _, err := c.Push(ctx, e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e.ID)
	}

	for _, tt := range []struct {
		name string
		q    client.Query
		want []string
	}{
		{"all asc", client.Query{Order: "asc", Limit: 10}, want},
		{"all desc", client.Query{Limit: 7}, reversed(want)},
		{"prefix", client.Query{Action: "other.*", Order: "asc", Limit: 2}, []string{want[0], want[5], want[10], want[15], want[20]}},
		{"since until", client.Query{Tenant: "acme", Order: "asc", Since: base.Add(3 * time.Second), Until: base.Add(6 * time.Second)}, want[3:6]},
		{"no match", client.Query{Tenant: "nobody"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			q := tt.q
			for pages := 0; ; pages++ {
				if pages > 30 {
					t.Fatal("paging does not end")
				}
				p, err := c.List(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				recs, err := p.Records()
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					got = append(got, r.ID)
				}
				if p.Next == "" {
					break
				}
				q.Cursor = p.Next
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("pages: got %v, want %v", got, tt.want)
			}

			q = tt.q
			q.Limit = 0
			got = nil
			for b, err := range c.Stream(ctx, q) {
				if err != nil {
					t.Fatal(err)
				}
				var r trail.Record
				if err := json.Unmarshal(b, &r); err != nil {
					t.Fatal(err)
				}
				got = append(got, r.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("stream: got %v, want %v", got, tt.want)
			}
		})
	}

	// A bad filter is the server's 400, not an empty page.
	if _, err := c.List(ctx, client.Query{Action: "acc*"}); trail.ErrorCode(err) != trail.EINVALID {
		t.Fatalf("bad filter: got %v, want EINVALID", err)
	}
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func TestProofs(t *testing.T) {
	s := MustOpenServer(t, nil)
	c := client.New(s.URL)
	ctx := context.Background()

	vkey, err := c.VerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if vkey != s.Verifier {
		t.Fatalf("verifier key: got %q, want %q", vkey, s.Verifier)
	}
	var ids []string
	for range 5 {
		res := mustPush(t, c, newEvent("proof.event"), newEvent("proof.event"))
		ids = append(ids, res.Receipts[0].ID, res.Receipts[1].ID)
	}
	old, _ := testserver.WaitCheckpoint(t, s.URL, vkey, 10)

	for _, id := range ids {
		b, cp, err := c.VerifyRecord(ctx, id, vkey)
		if err != nil {
			t.Fatalf("record %s: %v", id, err)
		}
		if cp.Size < 10 || len(b) == 0 {
			t.Fatalf("record %s: got checkpoint %+v", id, cp)
		}
	}

	// A proof against another key, or with a flipped hash, fails.
	p, err := c.Proof(ctx, ids[3], 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != ids[3] || p.Seq != 3 {
		t.Fatalf("got proof %+v, want id %s seq 3", p, ids[3])
	}
	_, otherKey, err := merkle.LoadOrCreateKey(filepath.Join(t.TempDir(), "k"), "trail.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(otherKey); err == nil {
		t.Fatal("a proof verified under another key")
	}
	p.LeafHash[0] ^= 1
	if _, err := p.Verify(vkey); !errors.Is(err, client.ErrProof) {
		t.Fatalf("tampered leaf: got %v, want ErrProof", err)
	}

	// The log grows; the new tree extends the old one.
	for range 3 {
		if _, err := c.Push(ctx, newEvent("proof.later")); err != nil {
			t.Fatal(err)
		}
	}
	cur, _ := testserver.WaitCheckpoint(t, s.URL, vkey, old.Size+3)
	logName := strings.TrimPrefix(old.Origin, "trail.test/")
	cons, err := c.Consistency(ctx, logName, old.Size, cur.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Verify(old, cur); err != nil {
		t.Fatal(err)
	}
	if err := cons.Verify(cur, old); !errors.Is(err, client.ErrProof) {
		t.Fatalf("swapped checkpoints: got %v, want ErrProof", err)
	}
	if len(cons.Proof) > 0 {
		cons.Proof[0][0] ^= 1
		if err := cons.Verify(old, cur); !errors.Is(err, client.ErrProof) {
			t.Fatalf("tampered consistency proof: got %v, want ErrProof", err)
		}
	}
}

func TestReadyHealth(t *testing.T) {
	c := newClient(t)
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	down := client.New("http://127.0.0.1:1", client.WithRetries(0))
	if err := down.Ready(context.Background()); err == nil {
		t.Fatal("Ready on a closed port: got nil")
	}
}

// TestRetry503 puts a server that refuses the first POSTs with 503 in front
// of the real API: Push retries and stores the event once.
func TestRetry503(t *testing.T) {
	var refuse atomic.Int32
	refuse.Store(2)
	s := MustOpenServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && refuse.Add(-1) >= 0 {
				w.Header().Set("Retry-After", "0")
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(`{"type":"about:blank","title":"Unavailable","status":503,"detail":"queue full","code":"unavailable"}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	var mu sync.Mutex
	var statuses []int
	c := client.New(s.URL, fast, client.WithObserver(func(a client.Attempt) {
		mu.Lock()
		statuses = append(statuses, a.Status)
		mu.Unlock()
	}))
	res, err := c.Push(context.Background(), newEvent("retry.event"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Receipts[0].Seq != 0 {
		t.Fatalf("got %+v, want a created receipt at seq 0", res)
	}
	if fmt.Sprint(statuses) != "[503 503 201]" {
		t.Fatalf("attempts: got %v, want [503 503 201]", statuses)
	}

	// Out of retries, the caller gets the 503 with its problem.
	refuse.Store(5)
	c = client.New(s.URL, fast, client.WithRetries(2))
	_, err = c.Push(context.Background(), newEvent("retry.event"))
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 503 || ce.Detail != "queue full" || !errors.Is(err, trail.ErrUnavailable) {
		t.Fatalf("got %v, want the 503 problem", err)
	}
}

// TestRetryLostAnswer stores a request and then drops the connection, as a
// crash or a network fault would: the client retries with the same id and
// gets the original receipt, and the event is stored once.
func TestRetryLostAnswer(t *testing.T) {
	var drop atomic.Int32
	drop.Store(1)
	var stored bytes.Buffer
	s := MustOpenServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && drop.Add(-1) >= 0 {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				stored.Write(rec.Body.Bytes())
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				conn.Close()
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	c := client.New(s.URL, fast)
	res, err := c.Push(context.Background(), newEvent("lost.answer"))
	if err != nil {
		t.Fatal(err)
	}
	var first trail.Receipt
	if err := json.Unmarshal(stored.Bytes(), &first); err != nil {
		t.Fatalf("first answer %q: %v", stored.Bytes(), err)
	}
	if res.Created || res.Receipts[0] != first {
		t.Fatalf("got %+v, want the first attempt's receipt %+v as a replay", res, first)
	}
	p, err := c.List(context.Background(), client.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1 {
		t.Fatalf("got %d records, want 1", len(p.Events))
	}

	// Without client ids, a lost answer is not retried: a retry could
	// store the event twice.
	drop.Store(1)
	c = client.New(s.URL, fast, client.WithIDs(nil))
	if _, err := c.Push(context.Background(), newEvent("lost.answer")); err == nil {
		t.Fatal("got no error for a lost answer without client ids")
	}
}

func TestBadURL(t *testing.T) {
	c := client.New("not a url")
	if _, _, err := c.Get(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "bad server URL") {
		t.Fatalf("got %v, want a bad-URL error", err)
	}
}

func TestParseETag(t *testing.T) {
	h := tlog.RecordHash([]byte("x"))
	for _, tt := range []string{`"` + h.String() + `"`, `W/"` + h.String() + `"`, fmt.Sprintf(`"%x"`, h[:])} {
		got, err := client.ParseETag(tt)
		if err != nil || got != h {
			t.Fatalf("ParseETag(%s): got %v, %v, want %s", tt, got, err, h)
		}
	}
	if _, err := client.ParseETag(`"abc"`); err == nil {
		t.Fatal("ParseETag accepted a short tag")
	}
}

// TestPathEscaping sends an id that needs escaping: the server sees it as
// one path segment (and rejects it as an id), not as two.
func TestPathEscaping(t *testing.T) {
	var got string
	s := MustOpenServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = r.URL.EscapedPath()
			h.ServeHTTP(w, r)
		})
	})
	_, _, err := client.New(s.URL+"/").Get(context.Background(), "a/b c")
	if got != "/logs/a%2Fb%20c" {
		t.Fatalf("got path %q, want /logs/a%%2Fb%%20c", got)
	}
	if trail.ErrorCode(err) != trail.EINVALID {
		t.Fatalf("got %v, want the server's 400 for a bad id", err)
	}
}

func TestBatcher(t *testing.T) {
	s := MustOpenServer(t, nil)
	var posts atomic.Int32
	c := client.New(s.URL, client.WithObserver(func(a client.Attempt) {
		if a.Method == http.MethodPost {
			posts.Add(1)
		}
	}))
	// A linger far longer than the test: batches go when full, so that
	// the count of requests does not depend on timing.
	b := c.NewBatcher(client.BatcherConfig{MaxEvents: 10, Linger: time.Hour})
	ctx := context.Background()

	var wg sync.WaitGroup
	receipts := make([]trail.Receipt, 100)
	errs := make([]error, 100)
	for i := range 100 {
		wg.Go(func() {
			e := newEvent("batched.event")
			if i == 42 {
				e.Action = "Bad Action"
			}
			receipts[i], errs[i] = b.Push(ctx, e)
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	seqs := map[int64]bool{}
	for i := range 100 {
		if i == 42 {
			if trail.ErrorCode(errs[i]) != trail.EINVALID || !strings.Contains(errs[i].Error(), "action") {
				t.Fatalf("bad event: got %v, want its own 400 naming \"action\"", errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("event %d: %v", i, errs[i])
		}
		seqs[receipts[i].Seq] = true
	}
	if len(seqs) != 99 {
		t.Fatalf("got %d distinct seqs, want 99", len(seqs))
	}
	// 10 full batches, and the one with the bad event sent again without it.
	if got := posts.Load(); got != 11 {
		t.Fatalf("got %d requests, want 11", got)
	}
	if _, err := b.Push(ctx, newEvent("late.event")); !errors.Is(err, client.ErrBatcherClosed) {
		t.Fatalf("push after close: got %v", err)
	}
}
