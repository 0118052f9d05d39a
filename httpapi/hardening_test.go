package httpapi_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
)

// TestHostileEvents checks the HTTP answers to events that a proxy or a
// second parser could read otherwise than trail does (docs/SECURITY.md).
func TestHostileEvents(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	for _, tt := range []struct {
		name, body, want string
	}{
		{"duplicate key", `{"action":"a.b","action":"c.d","actor":{"id":"u"},"source":{"service":"s"}}`, `duplicate key "action" at /action`},
		{"duplicate nested key", `{"action":"a.b","actor":{"id":"u","id":"admin"},"source":{"service":"s"}}`, `duplicate key "id" at /actor/id`},
		{"duplicate key in data", `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{"x":{"k":1,"k":2}}}`, `duplicate key "k" at /data/x/k`},
		{"other case", `{"ACTION":"a.b","SOURCE":{"Service":"s"},"actor":{"ID":"u"}}`, `unknown field "ACTION"`},
		{"lone surrogate", `{"id":"sur-1","action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{"x":"\udfff"}}`, `lone surrogate`},
		{"blank actor", `{"action":"a.b","actor":{"id":" "},"source":{"service":"s"}}`, `must not be blank`},
		{"control character", `{"action":"a.b","actor":{"id":"u\u001b[2J"},"source":{"service":"s"}}`, `control character U+001B`},
		{"id ..", `{"id":"..","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`, `field "id"`},
		{"batch item", `[{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}},{"tenant":"a","tenant":"b","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}]`, `item 1: duplicate key "tenant"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := ts.post(t, tt.body).problem(t, 400)
			if !strings.Contains(p.Detail, tt.want) {
				t.Fatalf("detail: got %q, want it to hold %q", p.Detail, tt.want)
			}
		})
	}
	if n := ts.size(t); n != 0 {
		t.Fatalf("got %d records, want 0", n)
	}
}

// TestRecordAsSent checks that a record holds <, > and & as sent, and that
// a record the server would grow past the event limit is refused with 413.
func TestRecordAsSent(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{Limits: trail.Limits{MaxEventBytes: 40000}})
	lt := strings.Repeat("<", 30000)
	body := `{"id":"lt-1","action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{"x":"` + lt + `"}}`
	ts.post(t, body).wantStatus(t, 201)
	r := ts.do(t, "GET", "/logs/lt-1", "")
	r.wantStatus(t, 200)
	if len(r.body) > len(body)+300 || !strings.Contains(string(r.body), lt) {
		t.Fatalf("got a %d-byte record for a %d-byte event, want the '<' as sent", len(r.body), len(body))
	}
	ts.post(t, body).wantStatus(t, 200) // a replay still matches

	// Within the limit as sent, over it as stored.
	pad := 40000 - len(`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{"x":""}}`)
	full := `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{"x":"` + strings.Repeat("a", pad) + `"}}`
	if p := ts.post(t, full).problem(t, 413); p.Code != trail.ETOOLARGE {
		t.Fatalf("code: got %q, want %q", p.Code, trail.ETOOLARGE)
	}
}

// TestListTimeRangeExact checks since and until far outside the range of
// record times: they must filter exactly, never overflow into "no filter".
func TestListTimeRangeExact(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	for i, tm := range []string{"1970-01-01T00:00:00Z", "2024-05-06T07:08:09Z", "2261-12-31T23:59:59.999999999Z"} {
		ts.post(t, `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"time":"`+tm+`","data":{"n":`+string(rune('0'+i))+`}}`).wantStatus(t, 201)
	}
	for _, tt := range []struct {
		query string
		want  int
	}{
		{"since=2263-01-01T00:00:00Z", 0},
		{"since=9999-12-31T23:59:59Z", 0},
		{"since=2262-01-01T00:00:00Z", 0},
		{"since=2261-12-31T23:59:59.999999999Z", 1},
		{"until=2300-01-01T00:00:00Z", 3},
		{"until=2262-04-12T00:00:00Z", 3},
		{"until=1600-01-01T00:00:00Z", 0},
		{"until=0001-01-01T00:00:00Z", 0},
		{"until=1970-01-01T00:00:00Z", 0},
		{"until=1970-01-01T00:00:00.000000001Z", 1},
		{"since=0001-01-01T00:00:00Z", 3},
		{"since=0000-01-01T00:00:00Z&until=9999-01-01T00:00:00Z", 3},
		{"since=1600-01-01T00:00:00Z&until=2024-05-06T07:08:10Z", 2},
	} {
		page, _ := getPage[json.RawMessage](t, ts, "/logs?"+tt.query)
		if len(page.Events) != tt.want {
			t.Errorf("?%s: got %d records, want %d", tt.query, len(page.Events), tt.want)
		}
	}
}

// TestMalformedQuery checks that a query string with broken percent
// encoding is refused on every GET route, rather than dropped: a lost
// cursor would restart paging from page 1.
func TestMalformedQuery(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	ts.post(t, `{"id":"q-1","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`).wantStatus(t, 201)
	for _, path := range []string{"/logs?cursor=%%%", "/logs?a=%zz", "/logs?limit=1&cursor=%zz", "/logs/q-1?x=%", "/checkpoint?log=%zz", "/proof/consistency?from=1&x=%g0", "/export?from=%", "/healthz?%", "/logs?a=1;b=2"} {
		p := ts.do(t, "GET", path, "").problem(t, 400)
		if !strings.Contains(p.Detail, "query string") {
			t.Errorf("GET %s: detail %q, want it to name the query string", path, p.Detail)
		}
	}
	// Well-formed escapes still work.
	ts.do(t, "GET", "/logs?actor="+url.QueryEscape("u"), "").wantStatus(t, 200)
}
