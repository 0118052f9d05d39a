package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestCloudEventsModes posts a CloudEvent in each mode and reads back
// the mapped record; a redelivery, even in another trace, gets 200 and the
// original receipt.
func TestCloudEventsModes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ts := MustOpenServer(t, serverConfig{Backend: backend})
		structured := `{"specversion":"1.0","type":"com.example.invoice.paid","source":"/billing","id":"inv-1",
			"subject":"invoice-7","time":"2026-01-02T03:04:05Z","actorid":"user-42","comexampleext":5,"data":{"amount":12}}`
		r := ts.do(t, "POST", "/logs", structured, "Content-Type", trail.CloudEventsJSON, "Traceparent", traceparent)
		r.wantStatus(t, http.StatusCreated)
		var rc trail.Receipt
		json.Unmarshal(r.body, &rc)
		if want := trail.CloudEventID("/billing", "inv-1"); rc.ID != want || r.header.Get("Location") != "/logs/"+want {
			t.Fatalf("structured: got id %q Location %q, want %q", rc.ID, r.header.Get("Location"), want)
		}
		rec := mustRecord(t, ts.do(t, "GET", "/logs/"+rc.ID, "").body)
		if rec.Action != "com.example.invoice.paid" || rec.Source.Service != "/billing" || rec.Actor.ID != "user-42" ||
			rec.TargetOrZero().ID != "invoice-7" || string(rec.Data) != `{"amount":12}` || rec.Time.Year() != 2026 ||
			rec.RequestID != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("structured: got record %+v, want the CloudEvent mapped", rec)
		}
		other := "00-11111111111111111111111111111111-00f067aa0ba902b7-01"
		again := ts.do(t, "POST", "/logs", structured, "Content-Type", trail.CloudEventsJSON, "Traceparent", other)
		again.wantStatus(t, http.StatusOK)
		var rc2 trail.Receipt
		json.Unmarshal(again.body, &rc2)
		if !receiptEqual(rc, rc2) {
			t.Errorf("redelivery: got receipt %+v, want the original %+v", rc2, rc)
		}

		batch := `[{"specversion":"1.0","type":"a.b","source":"/s","id":"1","actorid":"u","data":"text"},
			{"specversion":"1.0","type":"a.b","source":"/s","id":"2","actorid":"u","data":[1]}]`
		r = ts.do(t, "POST", "/logs", batch, "Content-Type", trail.CloudEventsBatchJSON)
		r.wantStatus(t, http.StatusCreated)
		var out struct{ Receipts []trail.Receipt }
		json.Unmarshal(r.body, &out)
		if len(out.Receipts) != 2 || out.Receipts[1].ID != trail.CloudEventID("/s", "2") {
			t.Fatalf("batch: got %s, want two receipts with derived ids", r.body)
		}
		if rec := mustRecord(t, ts.do(t, "GET", "/logs/"+out.Receipts[0].ID, "").body); string(rec.Data) != `{"value":"text"}` {
			t.Errorf("batch: data: got %s, want {\"value\":\"text\"}", rec.Data)
		}

		size := ts.size(t)
		bad := `[{"specversion":"1.0","type":"a.b","source":"/s","id":"3","actorid":"u"},
			{"specversion":"1.0","type":"a.b","source":"/s","id":"4"}]`
		p := ts.do(t, "POST", "/logs", bad, "Content-Type", trail.CloudEventsBatchJSON).problem(t, http.StatusBadRequest)
		if len(p.Errors) != 1 || p.Errors[0].Index != 1 || !strings.Contains(p.Errors[0].Reason, `"actorid"`) {
			t.Errorf("batch with an item lacking actorid: got %+v, want item 1 naming actorid", p)
		}
		if got := ts.size(t); got != size {
			t.Errorf("batch with a bad item: log size %d, want %d (atomic)", got, size)
		}

		bin := []string{"Ce-Specversion", "1.0", "Ce-Type", "account.locked", "Ce-Source", "%2Fauth", "Ce-Id", "b-1",
			"Ce-Actorid", "admin", "Ce-Subject", "acct-9", "Content-Type", "application/json"}
		r = ts.do(t, "POST", "/logs", `{"reason":"fraud"}`, bin...)
		r.wantStatus(t, http.StatusCreated)
		json.Unmarshal(r.body, &rc)
		rec = mustRecord(t, ts.do(t, "GET", "/logs/"+rc.ID, "").body)
		if rc.ID != trail.CloudEventID("/auth", "b-1") || rec.Source.Service != "/auth" || rec.Action != "account.locked" || string(rec.Data) != `{"reason":"fraud"}` {
			t.Errorf("binary: got %+v, want the ce-* headers mapped", rec)
		}
		p = ts.do(t, "POST", "/logs", `{}`, bin[:8]...).problem(t, http.StatusBadRequest)
		if !strings.Contains(p.Detail, `"actorid"`) {
			t.Errorf("binary without ce-actorid: detail %q, want it to name actorid", p.Detail)
		}
	})
}

// TestCloudEventsRefused: an uppercase type, and a CloudEvent whose source
// breaks the key's source binding.
func TestCloudEventsRefused(t *testing.T) {
	ts := MustOpenAuthServer(t, "sqlite")
	key := ts.mustKey(t, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}, Source: "/billing"})
	ev := func(typ, source string) string {
		return `{"specversion":"1.0","type":"` + typ + `","source":"` + source + `","id":"x","actorid":"u"}`
	}
	p := ts.as(t, key, "POST", "/logs", ev("com.Example.Paid", "/billing"), "Content-Type", trail.CloudEventsJSON).problem(t, http.StatusBadRequest)
	if !strings.Contains(p.Detail, `"type"`) {
		t.Errorf("uppercase type: detail %q, want it to name type", p.Detail)
	}
	ts.as(t, key, "POST", "/logs", ev("a.b", "/auth"), "Content-Type", trail.CloudEventsJSON).problem(t, http.StatusForbidden)
	ts.as(t, key, "POST", "/logs", ev("a.b", "/billing"), "Content-Type", trail.CloudEventsJSON).wantStatus(t, http.StatusCreated)
}

// TestTraceparent: an event without request_id takes the trace id of the
// request's traceparent; one with its own keeps it; a malformed header
// changes nothing.
func TestTraceparent(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	for _, c := range []struct{ body, header, want string }{
		{`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`, traceparent, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"request_id":"mine"}`, traceparent, "mine"},
		{`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`, "00-zz-00f067aa0ba902b7-01", ""},
	} {
		r := ts.do(t, "POST", "/logs", c.body, "Content-Type", "application/json", "Traceparent", c.header)
		r.wantStatus(t, http.StatusCreated)
		var rc trail.Receipt
		json.Unmarshal(r.body, &rc)
		if rec := mustRecord(t, ts.do(t, "GET", "/logs/"+rc.ID, "").body); rec.RequestID != c.want {
			t.Errorf("traceparent %q, body %s: request_id: got %q, want %q", c.header, c.body, rec.RequestID, c.want)
		}
	}
}
