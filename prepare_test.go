package trail

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// refPrepare is how Prepare encoded an event before it appended bytes by
// hand: encoding/json for the digest (HTML escaping) and for the record
// body (without). Prepare must match it byte for byte: stored digests
// and records were made by it.
func refPrepare(tb testing.TB, e *Event, receivedAt time.Time) (Digest, []byte, error) {
	tb.Helper()
	canon, err := json.Marshal(e)
	if err != nil {
		return Digest{}, nil, err
	}
	t := receivedAt.UTC()
	if e.Time != nil {
		t = *e.Time
	}
	b := Body{
		ReceivedAt: receivedAt.UTC(), KeyID: e.KeyID, Time: t, Tenant: e.Tenant, Actor: e.Actor, Action: e.Action,
		Target: e.Target, Source: e.Source, Outcome: e.Outcome, RequestID: e.RequestID, Data: e.Data,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&b); err != nil {
		return Digest{}, nil, err
	}
	return sha256.Sum256(canon), bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// checkPrepare compares Prepare with refPrepare for e.
func checkPrepare(t *testing.T, e *Event) {
	t.Helper()
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	d, body, rerr := refPrepare(t, e, now)
	p, err := Prepare(e, now, func() string { return "server-id" })
	if (err == nil) != (rerr == nil) {
		t.Fatalf("event %+v: got error %v, encoding/json says %v", e, err, rerr)
	}
	if err != nil {
		return
	}
	if !bytes.Equal(p.body, body) {
		t.Fatalf("event %+v: got body\n%s\nwant\n%s", e, p.body, body)
	}
	if p.Digest != d {
		t.Fatalf("event %+v: got digest %x, want %x", e, p.Digest, d)
	}
}

// prepareSeeds are events that exercise every escape and omission.
var prepareSeeds = []string{
	`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`,
	`{"id":"e-1","time":"2025-05-06T07:08:09.123456789Z","tenant":"acme","actor":{"id":"u","type":"user","name":"Ann \"A\" <x> & \\ \u2028 \u2029 /","ip":"10.0.0.1"},"action":"account.linked","target":{"id":"t","type":"identity"},"source":{"service":"auth","host":"h1","ip":"10.0.0.2"},"outcome":"failure","request_id":"r-1","data":{ "k" : [1, {"n": null}], "s": "\u00e9\n <&> \u2028 ` + "\u2028\u2029é" + ` \"q\" \\" ,"e":[ ],"f":-1.5e3, "c":"\b\f\t\u0001" }}`,
	`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"target":{"type":"x"},"data":{"x":"` + "\x7f" + `"}}`,
	`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"target":{"id":"x"},"data":{}}`,
	`{"user_id":"u","event_type":"A.B","timestamp":"2024-01-02T03:04:05+02:00","src_service":"s","invariant_data":{"a":[1, 2]},"app_data":{"b" : "<"}}`,
	`{"user_id":"u","event_type":"a","src_service":"s","variant_data":null}`,
	`{"user_id":"u","event_type":"a","src_service":"s","invariant_data":"x"}`,
}

// FuzzPrepare holds Prepare's hand-built digest and record body to
// encoding/json's for any event ParseEvent accepts.
func FuzzPrepare(f *testing.F) {
	for _, s := range prepareSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEvent(b, DefaultLimits)
		if err != nil {
			return
		}
		checkPrepare(t, e)
		e.KeyID = "key<1>"
		checkPrepare(t, e)
	})
}

// TestPrepareMatchesEncodingJSON checks events that ParseEvent never
// gives but a caller of Prepare may build: empty fields, an empty target,
// invalid UTF-8, control characters, odd times and invalid data.
func TestPrepareMatchesEncodingJSON(t *testing.T) {
	tm := func(s string) *time.Time {
		x, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return &x
	}
	var all strings.Builder
	for c := range 0x80 {
		all.WriteByte(byte(c))
	}
	all.WriteString("\u2028\u2029\xff\xe2\x80é\U0001F600")
	year10k := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range []*Event{
		{},
		{Action: "a", Target: &Target{}, Outcome: ""},
		{ID: "x<y", Tenant: all.String(), Actor: Actor{ID: all.String(), IP: "<"}, Source: Source{Service: "&", Host: all.String()}, Outcome: "o>", RequestID: all.String(), Target: &Target{Type: all.String()}},
		{Action: "a", Time: tm("2025-01-02T03:04:05.5-07:30"), Data: json.RawMessage(`{"a" :	"\u2028 ` + "\u2028" + `<",` + "\n" + `"b":[1 , 2]}`)},
		{Action: "a", Time: &year10k},
		{Action: "a", Data: json.RawMessage(`{"a":`)},
		{Action: "a", Data: json.RawMessage(`"<\"&\\"`)},
	} {
		checkPrepare(t, e)
	}
	for _, s := range prepareSeeds {
		e, err := ParseEvent([]byte(s), DefaultLimits)
		if err != nil {
			t.Fatalf("seed %s: %v", s, err)
		}
		checkPrepare(t, e)
	}
}

// TestReceiptAppendJSON holds Receipt.AppendJSON to encoding/json.
func TestReceiptAppendJSON(t *testing.T) {
	for _, r := range []Receipt{
		{},
		{ID: "0190a8c0-0000-7000-8000-000000000000", Log: "main", Seq: 1 << 40, ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), LeafHash: sha256.Sum256([]byte("x"))},
		{ID: `odd "<id>" & \ ` + "\u2028", Log: "a:b", Seq: -1, ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -5*3600))},
	} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&r); err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		if got := r.AppendJSON([]byte("x")); string(got) != "x"+string(want) {
			t.Errorf("got  %s\nwant x%s", got, want)
		}
	}
}

// FuzzParseBatch holds the one-pass reading of a batch to the item-by-item
// one: the same events, or, where the batch is bad, the item-by-item
// reading's error (parseBatchFast only ever succeeds).
func FuzzParseBatch(f *testing.F) {
	for _, s := range prepareSeeds {
		f.Add([]byte("[" + s + "," + s + "]"))
		f.Add([]byte(" [ " + s + " ] "))
	}
	f.Add([]byte(`[{"id":"a","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}},{"id":"a","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}]`))
	f.Add([]byte(`[{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}},42]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := Limits{MaxEventBytes: 300, MaxBatchEvents: 3}
		fast, ok := parseBatchFast(b, lim)
		var slow []*Event
		raws, err := splitArray(b)
		if err == nil {
			slow, err = parseItems(raws, lim, ParseEvent)
		}
		if ok != (err == nil) {
			t.Fatalf("input %q: one pass says %v, item by item says %v", b, ok, err)
		}
		got, _ := json.Marshal(fast)
		want, _ := json.Marshal(slow)
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("input %q: one pass reads %s, item by item reads %s", b, got, want)
		}
	})
}

// TestParseBatchLimits checks the limits at their edges on both readings.
func TestParseBatchLimits(t *testing.T) {
	item := `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`
	lim := Limits{MaxEventBytes: len(item), MaxBatchEvents: 2}
	for _, tt := range []struct {
		in   string
		want string // error code, "" for success
	}{
		{"[" + item + ", " + item + "]", ""},
		{"[" + item + "," + item + "," + item + "]", ETOOLARGE},
		{"[" + item + "," + item[:len(item)-1] + ` }` + "]", ETOOLARGE},
		{"[" + item + "," + `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{}}` + "]", ETOOLARGE},
	} {
		events, err := ParseBatch([]byte(tt.in), lim)
		if got := ErrorCode(err); got != tt.want {
			t.Errorf("%s: got %v, want code %q", tt.in, err, tt.want)
		}
		if tt.want == "" && len(events) != 2 {
			t.Errorf("%s: got %d events, want 2", tt.in, len(events))
		}
	}
}
