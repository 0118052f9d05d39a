package trail_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

func TestParseEvent(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string // want: substring of the error, "" for success
	}{
		{"minimal", `{"action":"account.created","actor":{"id":"u1"},"source":{"service":"s"}}`, ""},
		{"legacy", `{"user_id":"u1","event_type":"Account.Registered","timestamp":"2024-01-02T03:04:05Z","src_service":"auth","invariant_data":{"a":1},"app_data":{"b":2}}`, ""},
		{"malformed", `{"action":`, "malformed JSON"},
		{"not object", `[1]`, "must be a JSON object"},
		{"unknown field", `{"action":"a","actor":{"id":"u"},"source":{"service":"s"},"colour":"red"}`, `unknown field "colour"`},
		{"missing action", `{"actor":{"id":"u"},"source":{"service":"s"}}`, `"action" is required`},
		{"missing actor", `{"action":"a","source":{"service":"s"}}`, `"actor.id" is required`},
		{"missing source", `{"action":"a","actor":{"id":"u"}}`, `"source.service" is required`},
		{"bad action", `{"action":"Account Created","actor":{"id":"u"},"source":{"service":"s"}}`, `lowercase and dotted`},
		{"bad time", `{"action":"a","actor":{"id":"u"},"source":{"service":"s"},"time":"yesterday"}`, `"time" must be an RFC 3339 time`},
		{"data not object", `{"action":"a","actor":{"id":"u"},"source":{"service":"s"},"data":[1]}`, `"data" must be a JSON object`},
		{"bad outcome", `{"action":"a","actor":{"id":"u"},"source":{"service":"s"},"outcome":"meh"}`, `"outcome" must be`},
		{"bad id", `{"id":"a/b","action":"a","actor":{"id":"u"},"source":{"service":"s"}}`, `"id" may hold only`},
		{"wrong type", `{"action":5,"actor":{"id":"u"},"source":{"service":"s"}}`, `field "action" must be a string`},
		{"both shapes", `{"action":"a","event_type":"b","actor":{"id":"u"},"source":{"service":"s"}}`, `both given`},
		{"invalid utf8", "{\"action\":\"a\xff\",\"actor\":{\"id\":\"u\"},\"source\":{\"service\":\"s\"}}", "UTF-8"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := trail.ParseEvent([]byte(tt.in), trail.DefaultLimits)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(trail.ErrorMessage(err), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLegacyMapping(t *testing.T) {
	e, err := trail.ParseEvent([]byte(`{"user_id":"u1","event_type":"user.login","timestamp":"2024-01-02T03:04:05+01:00","src_service":"auth","invariant_data":{"a":1},"variant_data":{"b":2}}`), trail.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if e.Actor.ID != "u1" || e.Action != "user.login" || e.Source.Service != "auth" {
		t.Fatalf("got %+v", e)
	}
	if got, want := e.Time.Format(time.RFC3339), "2024-01-02T02:04:05Z"; got != want {
		t.Fatalf("time: got %s, want %s", got, want)
	}
	if got, want := string(e.Data), `{"app":{"b":2},"invariant":{"a":1}}`; got != want {
		t.Fatalf("data: got %s, want %s", got, want)
	}
}

func TestEntryBytes(t *testing.T) {
	e, err := trail.ParseEvent([]byte(`{"id":"e1","action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{"z":1,"a":[1,2]}}`), trail.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	p, err := trail.Prepare(e, now, func() string { t.Fatal("newID called for an event with an id"); return "" })
	if err != nil {
		t.Fatal(err)
	}
	ent := p.Entry("main", 7)
	want := `{"id":"e1","log":"main","seq":7,"received_at":"2026-01-02T03:04:05.000000006Z","time":"2026-01-02T03:04:05.000000006Z","actor":{"id":"u"},"action":"a.b","source":{"service":"s"},"outcome":"unknown","data":{"z":1,"a":[1,2]}}`
	if string(ent.Bytes) != want {
		t.Fatalf("got  %s\nwant %s", ent.Bytes, want)
	}
	if ent.LeafHash() != tlog.RecordHash([]byte(want)) {
		t.Fatal("leaf hash is not the RFC 6962 hash of the bytes")
	}
	var r trail.Record
	if err := json.Unmarshal(ent.Bytes, &r); err != nil || r.Seq != 7 || r.Log != "main" || r.Action != "a.b" || !r.Time.Equal(now) {
		t.Fatalf("round trip: got %+v, %v", r, err)
	}
	// The same event content gives the same digest whatever the receive time.
	p2, _ := trail.Prepare(e, now.Add(time.Hour), nil)
	if p2.Digest != p.Digest {
		t.Fatal("digest depends on receive time")
	}
}

func TestParseBatchNamesItems(t *testing.T) {
	_, err := trail.ParseBatch([]byte(`[{"action":"a","actor":{"id":"u"},"source":{"service":"s"}},{"action":"a"},{"id":"x","action":"a","actor":{"id":"u"},"source":{"service":"s"}},{"id":"x","action":"a","actor":{"id":"u"},"source":{"service":"s"}}]`), trail.DefaultLimits)
	var e *trail.Error
	if err == nil {
		t.Fatal("got no error")
	}
	e = err.(*trail.Error)
	if len(e.Items) != 2 || e.Items[0].Index != 1 || e.Items[1].Index != 3 {
		t.Fatalf("got items %+v, want indexes 1 and 3", e.Items)
	}
	if _, err := trail.ParseBatch([]byte(`[]`), trail.DefaultLimits); trail.ErrorCode(err) != trail.EINVALID {
		t.Fatalf("empty batch: got %v", err)
	}
	lim := trail.DefaultLimits
	lim.MaxBatchEvents = 1
	if _, err := trail.ParseBatch([]byte(`[{},{}]`), lim); trail.ErrorCode(err) != trail.ETOOLARGE {
		t.Fatalf("over limit: got %v", err)
	}
}

func TestHashLocation(t *testing.T) {
	// Every stored hash index must map to the record that creates it.
	var hashes []tlog.Hash
	r := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = hashes[x]
		}
		return out, nil
	})
	for n := int64(0); n < 100; n++ {
		hs, err := tlog.StoredHashes(n, []byte{byte(n)}, r)
		if err != nil {
			t.Fatal(err)
		}
		for level := range hs {
			x := int64(len(hashes)) + int64(level)
			seq, l := trail.HashLocation(x)
			if seq != n || l != level {
				t.Fatalf("index %d: got seq %d level %d, want %d %d", x, seq, l, n, level)
			}
		}
		hashes = append(hashes, hs...)
	}
}

// TestEntryBytesMatchRecord checks that the bytes Prepare and Entry build
// by hand are exactly what encoding the Record gives, for an event with
// every field set: the two encodings must never drift apart.
func TestEntryBytesMatchRecord(t *testing.T) {
	e, err := trail.ParseEvent([]byte(`{"id":"e-2","time":"2025-05-06T07:08:09.123Z","tenant":"acme","actor":{"id":"u","type":"user","name":"Ann \"A\" <x>","ip":"10.0.0.1"},"action":"account.linked","target":{"id":"t","type":"identity"},"source":{"service":"auth","host":"h1","ip":"10.0.0.2"},"outcome":"failure","request_id":"r-1","data":{ "k" : [1, {"n": null}], "s": "\u00e9\n" }}`), trail.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	p, err := trail.Prepare(e, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), nil)
	if err != nil {
		t.Fatal(err)
	}
	ent := p.Entry("log-1", 42)
	var r trail.Record
	if err := json.Unmarshal(ent.Bytes, &r); err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(ent.Bytes) {
		t.Fatalf("stored bytes:\n%s\nencoded record:\n%s", ent.Bytes, again)
	}
	if strings.ContainsRune(string(ent.Bytes), '\n') {
		t.Fatal("record bytes hold a newline: NDJSON exports would break")
	}
	// Another event with the same content but no time has another digest.
	e2 := *e
	e2.Time = nil
	p2, _ := trail.Prepare(&e2, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), nil)
	if p2.Digest == p.Digest {
		t.Fatal("an event without a time has the digest of one with a time")
	}
}
