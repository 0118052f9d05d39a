package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
	"github.com/trail-audit/trail/httpapi"
	"github.com/trail-audit/trail/internal/testmongo"
)

// MustOpenAuthServer starts a test server with authentication on.
func MustOpenAuthServer(tb testing.TB, backend string) *testServer {
	tb.Helper()
	// The tests send many bad credentials from one address on purpose.
	return MustOpenServer(tb, serverConfig{Backend: backend, Auth: &auth.Config{FailuresPerMinute: 1e6}})
}

// mustKey creates a key through the server's key manager and returns the
// Authorization header that sends it.
func (ts *testServer) mustKey(tb testing.TB, spec trail.Key) string {
	tb.Helper()
	if spec.Name == "" {
		spec.Name = "test"
	}
	_, key, err := ts.Keys.CreateKey(tb.Context(), &spec, nil)
	if err != nil {
		tb.Fatalf("CreateKey(%+v): %v", spec, err)
	}
	return "Bearer " + key
}

// mustExpiredKey stores a key that expired an hour ago.
func (ts *testServer) mustExpiredKey(tb testing.TB) string {
	tb.Helper()
	id, secret := auth.NewKeyID(), auth.NewSecret()
	now := time.Now()
	k := &trail.Key{ID: id, Name: "expired", Scopes: trail.AllScopes, Created: now.Add(-2 * time.Hour),
		Expires: now.Add(-time.Hour), Hash: auth.HashSecret(secret)}
	if err := ts.Keys.Keys.CreateKey(tb.Context(), k); err != nil {
		tb.Fatal(err)
	}
	return "Bearer " + auth.FormatKey(id, secret)
}

// mustRevokedKey creates a key with every scope and revokes it.
func (ts *testServer) mustRevokedKey(tb testing.TB) string {
	tb.Helper()
	h := ts.mustKey(tb, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite, trail.ScopeRead, trail.ScopeAudit, trail.ScopeAdmin}})
	id, _, _ := auth.ParseKey(strings.TrimPrefix(h, "Bearer "))
	if _, err := ts.Keys.RevokeKey(tb.Context(), id, nil); err != nil {
		tb.Fatal(err)
	}
	return h
}

// as sends a request with the Authorization header h ("" for none).
func (ts *testServer) as(tb testing.TB, h, method, path, body string, header ...string) *response {
	tb.Helper()
	if h != "" {
		header = append(header, "Authorization", h)
	}
	if body != "" && !slices.Contains(header, "Content-Type") {
		header = append(header, "Content-Type", "application/json")
	}
	return ts.do(tb, method, path, body, header...)
}

// credential is one of the route matrix's callers.
type credential struct {
	name   string
	header string
	scopes []trail.Scope // nil: not authenticated at all
}

// TestRouteMatrix runs every route of the router's own table with every
// kind of credential. A route whose scope has no rule here fails the test,
// so a new route cannot be added without deciding who may call it.
func TestRouteMatrix(t *testing.T) {
	ts := MustOpenAuthServer(t, "sqlite")
	r, w, au, ad, m := trail.ScopeRead, trail.ScopeWrite, trail.ScopeAudit, trail.ScopeAdmin, trail.ScopeMetrics
	writer := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{w}})
	ts.as(t, writer, "POST", "/logs", `{"id":"rec-a","tenant":"A","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`).wantStatus(t, http.StatusCreated)
	creds := []credential{
		{"none", "", nil},
		{"malformed", "Bearer trail_nonsense", nil},
		{"basic", "Basic dXNlcjpwYXNz", nil},
		{"unknown", "Bearer " + auth.FormatKey("nosuchkey", auth.NewSecret()), nil},
		{"expired", ts.mustExpiredKey(t), nil},
		{"revoked", ts.mustRevokedKey(t), nil},
		{"write-only", writer, []trail.Scope{w}},
		{"read@A", ts.mustKey(t, trail.Key{Scopes: []trail.Scope{r}, Tenant: "A"}), []trail.Scope{r}},
		{"read@B", ts.mustKey(t, trail.Key{Scopes: []trail.Scope{r}, Tenant: "B"}), []trail.Scope{r}},
		{"audit", ts.mustKey(t, trail.Key{Scopes: []trail.Scope{au}}), []trail.Scope{r, au}}, // audit reads every tenant
		{"admin", ts.mustKey(t, trail.Key{Scopes: []trail.Scope{ad}}), []trail.Scope{ad}},
		{"metrics", ts.mustKey(t, trail.Key{Scopes: []trail.Scope{m}}), []trail.Scope{m}},
	}
	bodies := map[string]string{
		"POST /logs":             `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`,
		"POST /keys":             `{"name":"made by the matrix","scopes":["read"]}`,
		"POST /keys/{id}/revoke": ``,
		"POST /tokens":           `{"tenant":"A"}`,
		"GET /proof/consistency": ``,
		"GET /logs/{id}/proof":   ``,
		"GET /export":            ``,
	}
	public := []string{"GET /checkpoint", "GET /checkpoint/key", "GET /healthz", "GET /readyz", "GET /openapi.json", "DELETE /session"}
	routes := httpapi.Routes(ts.Config.Handler)
	if len(routes) < 12 {
		t.Fatalf("Routes: got %d routes, want the full table", len(routes))
	}
	var unauthorized []byte
	for _, rt := range routes {
		name := rt.Method + " " + rt.Path
		if (rt.Scope == httpapi.Public) != slices.Contains(public, name) {
			t.Errorf("%s: got scope %q; want public exactly for %v", name, rt.Scope, public)
			continue
		}
		if rt.Scope != httpapi.Public && !slices.Contains(trail.AllScopes, rt.Scope) {
			t.Errorf("%s: scope %q has no rule in this test", name, rt.Scope)
			continue
		}
		path := strings.ReplaceAll(rt.Path, "{id}", "rec-a")
		for _, c := range creds {
			var resp *response
			if name == "GET /logs/stream" {
				resp = ts.statusOfStream(t, c.header, path) // never ends by itself
			} else {
				resp = ts.as(t, c.header, rt.Method, path, bodies[name])
			}
			switch {
			case rt.Scope == httpapi.Public:
				if resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden {
					t.Errorf("%s as %s: got %d, want a public answer", name, c.name, resp.status)
				}
			case c.scopes == nil:
				p := resp.problem(t, http.StatusUnauthorized)
				if got := resp.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("%s as %s: WWW-Authenticate: got %q, want Bearer", name, c.name, got)
				}
				// Every bad credential gets the same body, but for the
				// request's own path and id.
				p.Instance, p.RequestID = "", ""
				b, _ := json.Marshal(p)
				if unauthorized == nil {
					unauthorized = b
				} else if !bytes.Equal(b, unauthorized) {
					t.Errorf("%s as %s: 401 body: got %s, want %s", name, c.name, b, unauthorized)
				}
			case slices.Contains(c.scopes, rt.Scope):
				if resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden || resp.status >= 500 {
					t.Errorf("%s as %s: got %d %s, want the route's own answer", name, c.name, resp.status, resp.body)
				}
			default:
				if p := resp.problem(t, http.StatusForbidden); p.Code != trail.EFORBIDDEN {
					t.Errorf("%s as %s: code: got %q, want %q", name, c.name, p.Code, trail.EFORBIDDEN)
				}
			}
		}
	}
}

// tenantRecords writes records for tenants A and B and one with no tenant,
// and returns the ids by tenant.
func tenantRecords(t *testing.T, ts *testServer, writer string) map[string][]string {
	t.Helper()
	ids := map[string][]string{}
	var lines []string
	for i := range 12 {
		tenant := []string{"A", "B", ""}[i%3]
		id := fmt.Sprintf("%s-%d", cmpOr(tenant, "none"), i)
		ids[tenant] = append(ids[tenant], id)
		tf := ""
		if tenant != "" {
			tf = fmt.Sprintf(`"tenant":%q,`, tenant)
		}
		lines = append(lines, fmt.Sprintf(`{"id":%q,%s"action":"account.%s","actor":{"id":"u%d","type":"user"},"target":{"id":"t1","type":"acct"},"source":{"service":"svc"},"outcome":"success"}`,
			id, tf, []string{"created", "deleted"}[i%2], i%4))
	}
	ts.as(t, writer, "POST", "/logs", strings.Join(lines, "\n"), "Content-Type", "application/x-ndjson").wantStatus(t, http.StatusCreated)
	return ids
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tenantsOf reads the tenant of every record in a list or NDJSON body.
func tenantsOf(t *testing.T, body []byte) []string {
	t.Helper()
	var recs []trail.Record
	var page struct {
		Events []trail.Record `json:"events"`
	}
	if json.Unmarshal(body, &page) == nil && page.Events != nil {
		recs = page.Events
	} else {
		for line := range bytes.SplitSeq(bytes.TrimSpace(body), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var r trail.Record
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("record %s: %v", line, err)
			}
			recs = append(recs, r)
		}
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Tenant)
	}
	return out
}

// TestCrossTenant checks that tenant B's read key never sees one of A's
// records: on any path, with any filter, with a cursor copied from A's
// page, as NDJSON or through a proof.
func TestCrossTenant(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ts := MustOpenAuthServer(t, backend)
		writer := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}})
		readA := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeRead}, Tenant: "A"})
		readB := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeRead}, Tenant: "B"})
		ids := tenantRecords(t, ts, writer)

		filters := []string{"", "actor=u0", "actor_type=user", "action=account.created", "action=account.*",
			"target=t1", "target_type=acct", "source=svc", "outcome=success", "since=2000-01-01T00:00:00Z",
			"order=desc", "limit=1", "tenant=B", "actor=u1&action=account.*&order=desc"}
		for _, f := range filters {
			for _, accept := range []string{"application/json", "application/x-ndjson"} {
				resp := ts.as(t, readB, "GET", "/logs?"+f, "", "Accept", accept)
				resp.wantStatus(t, http.StatusOK)
				for _, tenant := range tenantsOf(t, resp.body) {
					if tenant != "B" {
						t.Errorf("GET /logs?%s (%s) as B: got a record of tenant %q", f, accept, tenant)
					}
				}
			}
		}
		for _, f := range []string{"tenant=A", "tenant=A&actor=u0"} {
			ts.as(t, readB, "GET", "/logs?"+f, "").problem(t, http.StatusForbidden)
		}

		// A cursor from A's first page resumes only within B's records.
		var pageA struct {
			Next string `json:"next"`
		}
		json.Unmarshal(ts.as(t, readA, "GET", "/logs?limit=1", "").body, &pageA)
		if pageA.Next == "" {
			t.Fatal("A's first page has no cursor")
		}
		resp := ts.as(t, readB, "GET", "/logs?cursor="+pageA.Next, "")
		resp.wantStatus(t, http.StatusOK)
		for _, tenant := range tenantsOf(t, resp.body) {
			if tenant != "B" {
				t.Errorf("B with A's cursor: got a record of tenant %q", tenant)
			}
		}

		missing := ts.as(t, readB, "GET", "/logs/no-such-id", "").problem(t, http.StatusNotFound)
		waitCheckpoint(t, ts, ts.size(t))
		for _, id := range append(ids["A"], ids[""]...) {
			for _, path := range []string{"/logs/" + id, "/logs/" + id + "/proof"} {
				p := ts.as(t, readB, "GET", path, "").problem(t, http.StatusNotFound)
				if want := strings.ReplaceAll(missing.Detail, "no-such-id", id); p.Detail != want {
					t.Errorf("GET %s as B: detail %q, want %q (the answer for a missing id)", path, p.Detail, want)
				}
			}
		}
		for _, id := range ids["B"] {
			ts.as(t, readB, "GET", "/logs/"+id, "").wantStatus(t, http.StatusOK)
			ts.as(t, readB, "GET", "/logs/"+id+"/proof", "").wantStatus(t, http.StatusOK)
		}
		if cc := ts.as(t, readB, "GET", "/logs/"+ids["B"][0], "").header.Get("Cache-Control"); !strings.HasPrefix(cc, "private") {
			t.Errorf("record Cache-Control with auth on: got %q, want private", cc)
		}
	})
}

// TestSpoofing checks that a write key bound to tenant A and source
// billing cannot write for another tenant or service, in any input shape,
// and that a refused batch stores nothing.
func TestSpoofing(t *testing.T) {
	ts := MustOpenAuthServer(t, "sqlite")
	billing := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}, Tenant: "A", Source: "billing"})
	ev := func(extra string) string {
		return `{"action":"a.b","actor":{"id":"u"},"source":{"service":"billing"}` + extra + `}`
	}
	spoofed := `{"action":"a.b","actor":{"id":"u"},"source":{"service":"auth"}}`
	for _, tt := range []struct {
		name, ctype, body string
		index             int
	}{
		{"single source", "application/json", spoofed, 0},
		{"single tenant", "application/json", ev(`,"tenant":"B"`), 0},
		{"batch", "application/json", "[" + ev("") + "," + ev(`,"tenant":"B"`) + "]", 1},
		{"ndjson", "application/x-ndjson", ev("") + "\n" + ev("") + "\n" + spoofed + "\n", 2},
		{"legacy", "application/json", `{"user_id":"u","event_type":"a.b","src_service":"auth"}`, 0},
		{"legacy batch", "application/json", `[{"user_id":"u","event_type":"a.b","src_service":"billing"},{"user_id":"u","event_type":"a.b","src_service":"auth"}]`, 1},
	} {
		before := ts.size(t)
		p := ts.as(t, billing, "POST", "/logs", tt.body, "Content-Type", tt.ctype).problem(t, http.StatusForbidden)
		if len(p.Errors) != 1 || p.Errors[0].Index != tt.index || !strings.Contains(p.Detail, fmt.Sprintf("item %d", tt.index)) {
			t.Errorf("%s: got %+v, want item %d named", tt.name, p, tt.index)
		}
		if after := ts.size(t); after != before {
			t.Errorf("%s: log grew from %d to %d records, want nothing stored", tt.name, before, after)
		}
	}

	// A conforming event is stamped with the tenant and the key's id.
	resp := ts.as(t, billing, "POST", "/logs", ev(""))
	resp.wantStatus(t, http.StatusCreated)
	var rc trail.Receipt
	json.Unmarshal(resp.body, &rc)
	ts.as(t, billing, "GET", "/logs/"+rc.ID, "").problem(t, http.StatusForbidden) // write-only
	reader := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeAudit}})
	rec := mustRecord(t, ts.as(t, reader, "GET", "/logs/"+rc.ID, "").body)
	id, _, _ := auth.ParseKey(strings.TrimPrefix(billing, "Bearer "))
	if rec.Tenant != "A" || rec.Source.Service != "billing" || rec.KeyID != id {
		t.Errorf("stored record: got tenant %q source %q key_id %q, want A, billing, %s", rec.Tenant, rec.Source.Service, rec.KeyID, id)
	}
	// A source-bound key may leave source.service out, in any shape.
	for _, body := range []string{`{"action":"a.b","actor":{"id":"u"}}`, `{"action":"a.b","actor":{"id":"u"},"source":{"host":"h1"}}`, `[{"user_id":"u","event_type":"a.b"}]`} {
		ts.as(t, billing, "POST", "/logs", body).wantStatus(t, http.StatusCreated)
	}
	unbound := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}})
	ts.as(t, unbound, "POST", "/logs", `{"action":"a.b","actor":{"id":"u"}}`).problem(t, http.StatusBadRequest)
	// A client cannot claim a key_id.
	ts.as(t, billing, "POST", "/logs", ev(`,"key_id":"`+id+`"`)).problem(t, http.StatusBadRequest)
}

// TestRateLimit checks a key's token bucket (rate 2/s, burst 4) and the
// headers of its 429.
func TestRateLimit(t *testing.T) {
	ts := MustOpenAuthServer(t, "sqlite")
	k := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite, trail.ScopeRead}, Rate: 2})
	ts.as(t, k, "POST", "/logs", batchJSON(0, 4)).wantStatus(t, http.StatusCreated)
	resp := ts.as(t, k, "POST", "/logs", batchJSON(4, 2))
	p := resp.problem(t, http.StatusTooManyRequests)
	if p.Code != trail.ERATELIMITED {
		t.Errorf("code: got %q, want %q", p.Code, trail.ERATELIMITED)
	}
	for name, want := range map[string]string{"Retry-After": "1", "RateLimit-Policy": `"key";q=2;w=1`, "RateLimit": `"key";r=0;t=1`} {
		if got := resp.header.Get(name); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	// Reads are charged one unit each.
	ts.as(t, k, "GET", "/logs?limit=1", "").problem(t, http.StatusTooManyRequests)
	time.Sleep(1100 * time.Millisecond)
	ts.as(t, k, "GET", "/logs?limit=1", "").wantStatus(t, http.StatusOK)
	// Another key has its own bucket.
	other := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}, Rate: 2})
	ts.as(t, other, "POST", "/logs", batchJSON(10, 4)).wantStatus(t, http.StatusCreated)
}

// TestFailedAuthLimit checks that an address that keeps failing to
// authenticate gets 429, even with a good key.
func TestFailedAuthLimit(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{Auth: &auth.Config{}})
	good := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeRead}})
	for i := range auth.MaxAuthFailures {
		if r := ts.as(t, "Bearer trail_guess_"+auth.NewSecret(), "GET", "/logs", ""); r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: got %d, want 401", i, r.status)
		}
	}
	resp := ts.as(t, good, "GET", "/logs", "")
	resp.problem(t, http.StatusTooManyRequests)
	if got := resp.header.Get("RateLimit-Policy"); got != `"auth";q=20;w=60` {
		t.Errorf("RateLimit-Policy: got %q, want %q", got, `"auth";q=20;w=60`)
	}
}

// TestOpenUntilFirstKey checks --auth auto on loopback: open while the
// store holds no key, closed from the first key on.
func TestOpenUntilFirstKey(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{Auth: &auth.Config{OpenWhileNoKeys: true}})
	ts.post(t, eventJSON("open-1", 1)).wantStatus(t, http.StatusCreated)
	resp := ts.do(t, "POST", "/keys", `{"name":"first admin","scopes":["admin"]}`, "Content-Type", "application/json")
	resp.wantStatus(t, http.StatusCreated)
	var created struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	json.Unmarshal(resp.body, &created)
	// Closed at once on the replica that made the key: no cache to wait for.
	ts.post(t, eventJSON("open-2", 2)).problem(t, http.StatusUnauthorized)
	ts.as(t, "Bearer "+created.Key, "GET", "/keys", "").wantStatus(t, http.StatusOK)
}

// TestOpenOnlyForLoopbackHosts checks that a server open until its first
// key (--auth auto on loopback) answers only requests addressed to a
// loopback host. A page of another site can make the browser's requests
// reach 127.0.0.1 by DNS rebinding, but their Host is then the site's name;
// answering them would let the page read every record and make itself the
// first admin key.
func TestOpenOnlyForLoopbackHosts(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{Auth: &auth.Config{OpenWhileNoKeys: true}})
	send := func(host string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", ts.URL+"/logs", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, host := range []string{"rebind.example", "rebind.example:8080", "10.0.0.1:8080"} {
		if resp := send(host); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("Host %s: got %d %s, want 403 problem+json", host, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	for _, host := range []string{"localhost", "LOCALHOST:8080", "127.0.0.1:8080", "127.1.2.3", "[::1]:8080"} {
		if resp := send(host); resp.StatusCode != http.StatusOK {
			t.Errorf("Host %s: got %d, want 200", host, resp.StatusCode)
		}
	}
}

// TestKeyBodiesNeedJSON checks that POST /keys and POST /tokens take only
// application/json. Another site's page may send a text/plain POST without
// a preflight; on a server open until its first key (--auth auto), one
// that created a key would lock the operator out with a key nobody knows.
func TestKeyBodiesNeedJSON(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{Auth: &auth.Config{OpenWhileNoKeys: true}})
	for path, body := range map[string]string{"/keys": `{"name":"x","scopes":["admin"]}`, "/tokens": `{"tenant":"A"}`} {
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
			header := []string{}
			if ct != "" {
				header = append(header, "Content-Type", ct)
			}
			ts.do(t, "POST", path, body, header...).problem(t, http.StatusUnsupportedMediaType)
		}
	}
	// Still open: no key was made.
	ts.post(t, eventJSON("still-open", 1)).wantStatus(t, http.StatusCreated)
}

// TestKeyRoutes creates, lists and revokes a key over HTTP, mints a viewer
// token, and checks that each change is in the log without the secret.
func TestKeyRoutes(t *testing.T) {
	ts := MustOpenAuthServer(t, "sqlite")
	admin := ts.mustKey(t, trail.Key{Name: "root", Scopes: []trail.Scope{trail.ScopeAdmin}})
	audit := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeAudit}})

	resp := ts.as(t, admin, "POST", "/keys", `{"name":"billing","scopes":["write"],"tenant":"A","source":"billing","rate":100,"expires":"2099-01-01T00:00:00Z"}`)
	resp.wantStatus(t, http.StatusCreated)
	var created struct {
		ID     string   `json:"id"`
		Key    string   `json:"key"`
		Scopes []string `json:"scopes"`
		State  string   `json:"state"`
		Tenant string   `json:"tenant"`
	}
	if err := json.Unmarshal(resp.body, &created); err != nil || created.ID == "" || !strings.HasPrefix(created.Key, "trail_"+created.ID+"_") || created.State != "active" || created.Tenant != "A" {
		t.Fatalf("POST /keys: got %s (%v), want the key, its id and state", resp.body, err)
	}
	_, secret, _ := auth.ParseKey(created.Key)
	ts.as(t, "Bearer "+created.Key, "POST", "/logs", `{"action":"a.b","actor":{"id":"u"}, "source":{"service":"billing"}}`).wantStatus(t, http.StatusCreated)

	for _, bad := range []string{`{"name":"x","scopes":["root"]}`, `{"name":"x","scopes":["audit"],"tenant":"A"}`, `{"scopes":["read"]}`, `{"name":"x","scopes":["read"],"secret":"mine"}`} {
		ts.as(t, admin, "POST", "/keys", bad).problem(t, http.StatusBadRequest)
	}

	list := ts.as(t, admin, "GET", "/keys", "")
	list.wantStatus(t, http.StatusOK)
	if bytes.Contains(list.body, []byte(secret)) || !bytes.Contains(list.body, []byte(created.ID)) || bytes.Contains(list.body, []byte(`"hash"`)) {
		t.Errorf("GET /keys: got %s, want the key listed without its secret or hash", list.body)
	}

	rev := ts.as(t, admin, "POST", "/keys/"+created.ID+"/revoke", "")
	rev.wantStatus(t, http.StatusOK)
	if !bytes.Contains(rev.body, []byte(`"state":"revoked"`)) {
		t.Errorf("revoke: got %s, want state revoked", rev.body)
	}
	ts.as(t, admin, "POST", "/keys/nosuchkey/revoke", "").problem(t, http.StatusNotFound)
	time.Sleep(auth.MaxCacheTTL)
	ts.as(t, "Bearer "+created.Key, "POST", "/logs", eventJSON("", 1)).problem(t, http.StatusUnauthorized)

	// The key's life is in the log, written by the admin key, without the secret.
	adminID, _, _ := auth.ParseKey(strings.TrimPrefix(admin, "Bearer "))
	for _, action := range []string{auth.ActionKeyCreated, auth.ActionKeyRevoked} {
		r := ts.as(t, audit, "GET", "/logs?action="+action+"&target="+created.ID, "")
		r.wantStatus(t, http.StatusOK)
		var page struct {
			Events []trail.Record `json:"events"`
		}
		json.Unmarshal(r.body, &page)
		if len(page.Events) != 1 || page.Events[0].Source.Service != "trail" || page.Events[0].KeyID != adminID || bytes.Contains(r.body, []byte(secret)) {
			t.Errorf("%s events: got %s, want one, by %s, from source trail, without the secret", action, r.body, adminID)
		}
	}

	tok := ts.as(t, admin, "POST", "/tokens", `{"tenant":"A","ttl":"5m"}`)
	tok.wantStatus(t, http.StatusCreated)
	var minted struct {
		Token string `json:"token"`
	}
	json.Unmarshal(tok.body, &minted)
	ts.as(t, "Bearer "+minted.Token, "GET", "/logs?limit=1", "").wantStatus(t, http.StatusOK)
	ts.as(t, "Bearer "+minted.Token, "GET", "/logs?tenant=B", "").problem(t, http.StatusForbidden)
	ts.as(t, "Bearer "+minted.Token, "POST", "/logs", eventJSON("", 2)).problem(t, http.StatusForbidden)
	ts.as(t, admin, "POST", "/tokens", `{"tenant":"A","ttl":"2h"}`).problem(t, http.StatusBadRequest)
	ts.as(t, admin, "POST", "/tokens", `{"ttl":"5m"}`).problem(t, http.StatusBadRequest)
}

// TestReplayByAnotherKey checks that a replay of an id with the same
// content by another key keeps the original receipt and key_id.
func TestReplayByAnotherKey(t *testing.T) {
	ts := MustOpenAuthServer(t, "sqlite")
	k1 := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite, trail.ScopeRead}})
	k2 := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}})
	first := ts.as(t, k1, "POST", "/logs", eventJSON("same", 1))
	first.wantStatus(t, http.StatusCreated)
	again := ts.as(t, k2, "POST", "/logs", eventJSON("same", 1))
	again.wantStatus(t, http.StatusOK)
	if !bytes.Equal(first.body, again.body) {
		t.Errorf("replay by another key: got %s, want the original receipt %s", again.body, first.body)
	}
	id1, _, _ := auth.ParseKey(strings.TrimPrefix(k1, "Bearer "))
	if rec := mustRecord(t, ts.as(t, k1, "GET", "/logs/same", "").body); rec.KeyID != id1 {
		t.Errorf("key_id: got %q, want the first writer %q", rec.KeyID, id1)
	}
	ts.as(t, k2, "POST", "/logs", eventJSON("same", 2)).problem(t, http.StatusConflict)
}

// TestRevocationAcrossReplicas revokes a key on one of two replicas over
// one MongoDB database and checks that the other refuses it within 1 s.
func TestRevocationAcrossReplicas(t *testing.T) {
	uri := testmongo.DatabaseURI(t)
	a := MustOpenServer(t, serverConfig{Backend: "mongo", URI: uri, Auth: &auth.Config{}})
	b := MustOpenServer(t, serverConfig{Backend: "mongo", URI: uri, Auth: &auth.Config{}})
	admin := a.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeAdmin}})
	reader := a.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeRead}})
	id, _, _ := auth.ParseKey(strings.TrimPrefix(reader, "Bearer "))
	// B has the key cached, as a busy replica would.
	b.as(t, reader, "GET", "/logs?limit=1", "").wantStatus(t, http.StatusOK)
	a.as(t, admin, "POST", "/keys/"+id+"/revoke", "").wantStatus(t, http.StatusOK)
	revoked := time.Now()
	for {
		status := b.as(t, reader, "GET", "/logs?limit=1", "").status
		if status == http.StatusUnauthorized {
			break
		}
		if status != http.StatusOK {
			t.Fatalf("replica B: got %d, want 200 until the revocation arrives, then 401", status)
		}
		if time.Since(revoked) > time.Second {
			t.Fatalf("replica B still accepts the key %s after the revocation, want at most 1s", time.Since(revoked))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("replica B refused the revoked key %s after the revocation", time.Since(revoked).Round(time.Millisecond))
}
