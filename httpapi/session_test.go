package httpapi_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/httpapi"
)

// sessionCookie posts a credential to /session and returns the cookie
// header the browser would send back.
func sessionCookie(t *testing.T, ts *testServer, cred string) string {
	t.Helper()
	resp := ts.as(t, cred, "POST", "/session", "")
	resp.wantStatus(t, http.StatusOK)
	c, err := http.ParseSetCookie(resp.header.Get("Set-Cookie"))
	if err != nil {
		t.Fatalf("Set-Cookie %q: %v", resp.header.Get("Set-Cookie"), err)
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Name != httpapi.SessionCookie {
		t.Errorf("cookie: got %+v, want %s, HttpOnly, Secure, SameSite=Strict", c, httpapi.SessionCookie)
	}
	return c.Name + "=" + c.Value
}

func TestSessionCookie(t *testing.T) {
	ts := MustOpenAuthServer(t, "sqlite")
	writer := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}})
	tenantRecords(t, ts, writer)
	reader := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeRead}, Tenant: "A"})
	cookie := sessionCookie(t, ts, reader)

	// GETs authenticate with the cookie alone, narrowed to the key's tenant.
	resp := ts.do(t, "GET", "/whoami", "", "Cookie", cookie)
	resp.wantStatus(t, http.StatusOK)
	var who struct {
		KeyID  string `json:"key_id"`
		Tenant string `json:"tenant"`
		Open   bool   `json:"open"`
	}
	if err := json.Unmarshal(resp.body, &who); err != nil || who.Tenant != "A" || who.KeyID == "" || who.Open {
		t.Errorf("GET /whoami: got %s (%v), want tenant A and the key id", resp.body, err)
	}
	resp = ts.do(t, "GET", "/logs", "", "Cookie", cookie)
	resp.wantStatus(t, http.StatusOK)
	for _, tn := range tenantsOf(t, resp.body) {
		if tn != "A" {
			t.Errorf("GET /logs with tenant A's cookie: got a record of tenant %q", tn)
		}
	}

	// Anything else needs the CSRF header besides the cookie.
	if p := ts.do(t, "DELETE", "/session", "", "Cookie", cookie).problem(t, http.StatusForbidden); !strings.Contains(p.Detail, httpapi.CSRFHeader) {
		t.Errorf("DELETE /session without %s: got %q, want it named", httpapi.CSRFHeader, p.Detail)
	}
	resp = ts.do(t, "DELETE", "/session", "", "Cookie", cookie, httpapi.CSRFHeader, "1")
	resp.wantStatus(t, http.StatusNoContent)
	if c, err := http.ParseSetCookie(resp.header.Get("Set-Cookie")); err != nil || c.MaxAge >= 0 {
		t.Errorf("DELETE /session: Set-Cookie got %q, want one that deletes the cookie", resp.header.Get("Set-Cookie"))
	}

	// A cookie with a bad credential is as unauthorized as the header.
	ts.do(t, "GET", "/logs", "", "Cookie", httpapi.SessionCookie+"=trail_nonsense").problem(t, http.StatusUnauthorized)
}

func TestSessionOpen(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	resp := ts.do(t, "POST", "/session", "")
	resp.wantStatus(t, http.StatusOK)
	if got := resp.header.Get("Set-Cookie"); got != "" {
		t.Errorf("POST /session with auth off: Set-Cookie got %q, want none", got)
	}
	if got := string(ts.do(t, "GET", "/whoami", "").body); !strings.Contains(got, `"open":true`) {
		t.Errorf("GET /whoami with auth off: got %s, want open", got)
	}
}

func TestLogsDownload(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	tenantRecords(t, ts, "")
	resp := ts.do(t, "GET", "/logs?format=csv&tenant=A", "")
	resp.wantStatus(t, http.StatusOK)
	if got := resp.header.Get("Content-Disposition"); got != `attachment; filename="trail-export.csv"` {
		t.Errorf("Content-Disposition: got %q, want an attachment", got)
	}
	rows, err := csv.NewReader(strings.NewReader(string(resp.body))).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v in %s", err, resp.body)
	}
	if len(rows) != 5 || strings.Join(rows[0][:3], ",") != "id,log,seq" {
		t.Fatalf("CSV: got %d rows starting %v, want a header and 4 records", len(rows), rows[0])
	}
	if rows[1][5] != "A" || rows[1][8] == "" {
		t.Errorf("CSV row: got %v, want tenant A and an action", rows[1])
	}

	resp = ts.do(t, "GET", "/logs?format=ndjson&tenant=A", "")
	resp.wantStatus(t, http.StatusOK)
	if got := resp.header.Get("Content-Type"); got != "application/x-ndjson" {
		t.Errorf("Content-Type: got %q, want application/x-ndjson", got)
	}
	if got := strings.Count(string(resp.body), "\n"); got != 4 {
		t.Errorf("NDJSON: got %d lines, want 4", got)
	}
	ts.do(t, "GET", "/logs?format=xml", "").problem(t, http.StatusBadRequest)
}

// TestCSVDownloadHasEveryColumn checks the columns a store's List need
// not fill from its index (trail.Reader): request_id and key_id come from
// the record's bytes.
func TestCSVDownloadHasEveryColumn(t *testing.T) {
	ts := MustOpenAuthServer(t, "sqlite")
	w := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite, trail.ScopeRead}})
	ts.as(t, w, "POST", "/logs", `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"request_id":"req-7"}`).wantStatus(t, http.StatusCreated)
	resp := ts.as(t, w, "GET", "/logs?format=csv&action=a.b", "")
	resp.wantStatus(t, http.StatusOK)
	rows, err := csv.NewReader(strings.NewReader(string(resp.body))).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("CSV: got %d rows, %v; want a header and 1 record", len(rows), err)
	}
	keyID, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(w, "Bearer "), "trail_"), "_")
	want := map[string]string{"request_id": "req-7", "key_id": keyID, "actor.id": "u", "source.service": "s"}
	for i, col := range rows[0] {
		if v, ok := want[col]; ok && rows[1][i] != v {
			t.Errorf("column %s: got %q, want %q", col, rows[1][i], v)
		}
	}
}

// TestCSVDownloadDefusesFormulas checks that a cell a producer chose cannot
// run as a formula in the spreadsheet an auditor opens the export in
// (OWASP "CSV injection"): a leading =, +, - or @ gets a quote.
func TestCSVDownloadDefusesFormulas(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	ts.post(t, `{"action":"a.b","actor":{"id":"=HYPERLINK(\"http://x.example\",\"y\")","type":"+1"},`+
		`"target":{"id":"@SUM(A1)","type":"-2"},"source":{"service":"=svc"},"request_id":"plain=text"}`).wantStatus(t, http.StatusCreated)
	resp := ts.do(t, "GET", "/logs?format=csv", "")
	resp.wantStatus(t, http.StatusOK)
	rows, err := csv.NewReader(strings.NewReader(string(resp.body))).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("CSV: got %d rows, %v; want a header and 1 record", len(rows), err)
	}
	want := map[string]string{
		"actor.id": `'=HYPERLINK("http://x.example","y")`, "actor.type": "'+1", "target.id": "'@SUM(A1)",
		"target.type": "'-2", "source.service": "'=svc", "request_id": "plain=text", "action": "a.b",
	}
	for i, col := range rows[0] {
		if w, ok := want[col]; ok && rows[1][i] != w {
			t.Errorf("column %s: got %q, want %q", col, rows[1][i], w)
		}
	}
}

// TestSessionDeleteWithDeadCredential checks that DELETE /session clears
// the cookie whatever the credential inside it has become: a viewer whose
// key was revoked, or whose cookie holds nonsense, must still be able to
// sign out. It changes only the caller's own cookie, but still needs the
// CSRF header, so that another site cannot sign the viewer out.
func TestSessionDeleteWithDeadCredential(t *testing.T) {
	ts := MustOpenAuthServer(t, "sqlite")
	cookie := func(header string) string { return httpapi.SessionCookie + "=" + strings.TrimPrefix(header, "Bearer ") }
	for name, cookie := range map[string]string{
		"expired":  cookie(ts.mustExpiredKey(t)),
		"revoked":  cookie(ts.mustRevokedKey(t)),
		"nonsense": httpapi.SessionCookie + "=trail_nonsense",
	} {
		if p := ts.do(t, "DELETE", "/session", "", "Cookie", cookie).problem(t, http.StatusForbidden); !strings.Contains(p.Detail, httpapi.CSRFHeader) {
			t.Errorf("%s cookie, no %s: got %q, want it named", name, httpapi.CSRFHeader, p.Detail)
		}
		resp := ts.do(t, "DELETE", "/session", "", "Cookie", cookie, httpapi.CSRFHeader, "1")
		resp.wantStatus(t, http.StatusNoContent)
		if c, err := http.ParseSetCookie(resp.header.Get("Set-Cookie")); err != nil || c.MaxAge >= 0 {
			t.Errorf("%s cookie: Set-Cookie got %q, want one that deletes the cookie", name, resp.header.Get("Set-Cookie"))
		}
	}
}
