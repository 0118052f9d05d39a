package trail_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
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
			checkParseEvent(t, tt.in, tt.want)
		})
	}
}

// checkParseEvent checks ParseEvent on in: it must succeed if want is "",
// and otherwise fail with a message containing want. It returns the error.
func checkParseEvent(t *testing.T, in, want string) error {
	t.Helper()
	_, err := trail.ParseEvent([]byte(in), trail.DefaultLimits)
	switch {
	case want == "" && err != nil:
		t.Fatalf("got error %v, want none", err)
	case want != "" && (err == nil || !strings.Contains(trail.ErrorMessage(err), want)):
		t.Fatalf("got error %v, want one containing %q", err, want)
	}
	return err
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
	// Records hold <, > and & unescaped (docs/SECURITY.md).
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&r); err != nil {
		t.Fatal(err)
	}
	again := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
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

// ev builds an event with the required fields around extra members.
func ev(extra string) string {
	return `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}` + extra + `}`
}

// TestParseEventHostile checks the answers to hostile input that a proxy
// or a second parser could read otherwise than trail does.
func TestParseEventHostile(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string // want: substring of the error, "" for success
	}{
		{"duplicate action", `{"action":"a.b","action":"c.d","actor":{"id":"u"},"source":{"service":"s"}}`, `duplicate key "action" at /action`},
		{"duplicate actor.id", `{"action":"a.b","actor":{"id":"u","id":"admin"},"source":{"service":"s"}}`, `duplicate key "id" at /actor/id`},
		{"duplicate in data", ev(`,"data":{"x":[{"k":1,"k":2}]}`), `duplicate key "k" at /data/x/0/k`},
		{"duplicate legacy", `{"user_id":"u","user_id":"v","event_type":"a.b","src_service":"s"}`, `duplicate key "user_id"`},
		{"upper-case field", `{"ACTION":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`, `unknown field "ACTION"`},
		{"mixed-case nested", `{"action":"a.b","actor":{"ID":"u"},"source":{"service":"s"}}`, `unknown field "actor.ID"`},
		{"mixed-case source", `{"action":"a.b","actor":{"id":"u"},"source":{"Service":"s"}}`, `unknown field "source.Service"`},
		{"lone high surrogate", ev(`,"tenant":"\ud800"`), `lone surrogate`},
		{"lone low surrogate in data", ev(`,"data":{"x":"\udfff"}`), `lone surrogate`},
		{"lone surrogate in a key", ev(`,"data":{"\ud800":1}`), `lone surrogate`},
		{"surrogate pair", ev(`,"data":{"x":"\ud83d\ude00"}`), ""},
		{"empty actor.id", `{"action":"a.b","actor":{"id":""},"source":{"service":"s"}}`, `"actor.id" is required`},
		{"blank actor.id", `{"action":"a.b","actor":{"id":" \t"},"source":{"service":"s"}}`, `"actor.id" must not be blank`},
		{"blank source.service", `{"action":"a.b","actor":{"id":"u"},"source":{"service":"  "}}`, `"source.service" must not be blank`},
		{"blank legacy user_id", `{"user_id":" ","event_type":"a.b","src_service":"s"}`, `"actor.id" must not be blank`},
		{"control in tenant", ev(`,"tenant":"a\u0000b"`), `field "tenant" holds control character U+0000`},
		{"control in actor.name", `{"action":"a.b","actor":{"id":"u","name":"a\nb"},"source":{"service":"s"}}`, `field "actor.name" holds control character U+000A`},
		{"control in target.type", ev(`,"target":{"type":"x\u001f"}`), `field "target.type" holds control`},
		{"control in source.host", `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s","host":"h\r"}}`, `field "source.host" holds control`},
		{"control in data", ev(`,"data":{"x":"a\u0000\n"}`), ""},
		{"DEL is not C0", ev(`,"tenant":"a\u007f"`), ""},
		{"id dot", ev(`,"id":"."`), `field "id"`},
		{"id dot dot", ev(`,"id":".."`), `field "id"`},
		{"id three dots", ev(`,"id":"..."`), ""},
		{"time year 1", ev(`,"time":"0001-01-01T00:00:00Z"`), `out of range`},
		{"time 2262", ev(`,"time":"2262-01-01T00:00:00Z"`), `out of range`},
		{"time last", ev(`,"time":"2261-12-31T23:59:59.999999999Z"`), ""},
		{"trailing data", ev(``) + ` {}`, `after the event object`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkParseEvent(t, tt.in, tt.want)
			if tt.want != "" && trail.ErrorCode(err) != trail.EINVALID {
				t.Fatalf("got error %v, want an invalid one containing %q", err, tt.want)
			}
		})
	}
}

func TestValidateIDSegments(t *testing.T) {
	for _, tt := range []struct {
		id string
		ok bool
	}{{".", false}, {"..", false}, {"...", true}, {".a", true}, {"a..b", true}, {"", false}, {"a/b", false}} {
		if err := trail.ValidateID(tt.id); (err == nil) != tt.ok {
			t.Errorf("ValidateID(%q): got %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

// TestParseBatchStrict checks that a batch reports a duplicate key by the
// item that holds it.
func TestParseBatchStrict(t *testing.T) {
	_, err := trail.ParseBatch([]byte(`[`+ev(``)+`,`+ev(`,"tenant":"a","tenant":"b"`)+`]`), trail.DefaultLimits)
	var e *trail.Error
	if !errors.As(err, &e) || len(e.Items) != 1 || e.Items[0].Index != 1 || !strings.Contains(e.Items[0].Reason, `duplicate key "tenant"`) {
		t.Fatalf("got %v, want item 1 naming the duplicate key", err)
	}
	if _, err := trail.ParseBatch([]byte(`[`+ev(``)+`] x`), trail.DefaultLimits); trail.ErrorCode(err) != trail.EINVALID {
		t.Fatalf("trailing data: got %v, want invalid", err)
	}
}

// TestPrepareStoresWhatWasSent checks that the record holds <, > and &
// as sent, while the idempotency digest keeps the encoding records stored
// by earlier versions were compared by.
func TestPrepareStoresWhatWasSent(t *testing.T) {
	e, err := trail.ParseEvent([]byte(`{"action":"a.b","actor":{"id":"u","name":"<b>&</b>"},"source":{"service":"s"},"data":{"h":"<script>&amp;"}}`), trail.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	p, err := trail.Prepare(e, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), func() string { return "x" })
	if err != nil {
		t.Fatal(err)
	}
	b := p.Entry("main", 0).Bytes
	for _, want := range []string{`"name":"<b>&</b>"`, `"data":{"h":"<script>&amp;"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("got record %s, want it to hold %s", b, want)
		}
	}
	canon, _ := json.Marshal(e) // the digest's encoding since the first release
	if got, want := p.Digest, trail.Digest(sha256.Sum256(canon)); got != want {
		t.Errorf("got digest %x, want %x", got, want)
	}
}

// TestPrepareRecordLimit checks that the stored record, not only the input,
// stays within the event limit: 30 KB of '<' once became a 180 KB record.
func TestPrepareRecordLimit(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	newID := func() string { return "0190a8c0-0000-7000-8000-000000000000" }
	lt := ev(`,"data":{"x":"` + strings.Repeat("<", 30000) + `"}`)
	e, err := trail.ParseEvent([]byte(lt), trail.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	p, err := trail.Prepare(e, now, newID)
	if err != nil {
		t.Fatalf("got %v, want a record", err)
	}
	if n := len(p.Entry("main", 0).Bytes); n > len(lt)+300 {
		t.Fatalf("got a %d-byte record for a %d-byte event, want at most %d", n, len(lt), len(lt)+300)
	}

	lim := trail.Limits{MaxEventBytes: 4096}
	pad := 4096 - len(ev(`,"data":{"x":""}`))
	full := ev(`,"data":{"x":"` + strings.Repeat("a", pad) + `"}`)
	if e, err = trail.ParseEvent([]byte(full), lim); err != nil {
		t.Fatal(err)
	}
	if _, err := trail.Prepare(e, now, newID); trail.ErrorCode(err) != trail.ETOOLARGE {
		t.Fatalf("a %d-byte event whose record outgrows the limit of 4096: got %v, want %s", len(full), err, trail.ETOOLARGE)
	}
	// U+2028 is escaped in the record: 3 bytes become 6.
	ls := `{"action":"a.b","actor":{"id":"u","name":"` + strings.Repeat("\u2028", 300) + `"},"source":{"service":"s"}}`
	if e, err = trail.ParseEvent([]byte(ls), trail.Limits{MaxEventBytes: 1200}); err != nil {
		t.Fatal(err)
	}
	if _, err := trail.Prepare(e, now, newID); trail.ErrorCode(err) != trail.ETOOLARGE {
		t.Fatalf("U+2028 blow-up: got %v, want %s", err, trail.ETOOLARGE)
	}
}
