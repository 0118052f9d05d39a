package trail_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
)

// The structured JSON examples of the CloudEvents 1.0.2 specification
// (spec.md "Example" and json-format.md §3.1, §5), each with the actorid
// extension trail requires added. Their data_base64 placeholder is made
// real base64.
var ceSpecExamples = []struct {
	name, in string
	want     trail.Event // ID is checked against CloudEventID
	data     string      // the record's data, compacted
}{
	{"spec.md example", `{
    "specversion" : "1.0",
    "type" : "com.github.pull_request.opened",
    "source" : "https://github.com/cloudevents/spec/pull",
    "subject" : "123",
    "id" : "A234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "datacontenttype" : "text/xml",
    "data" : "<much wow=\"xml\"/>",
    "actorid" : "octocat"
}`, trail.Event{Action: "com.github.pull_request.opened", Source: trail.Source{Service: "https://github.com/cloudevents/spec/pull"},
		Target: &trail.Target{ID: "123"}, Actor: trail.Actor{ID: "octocat"}}, `{"value":"<much wow=\"xml\"/>"}`},
	{"json-format.md binary data", `{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "id" : "A234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "datacontenttype" : "application/vnd.apache.thrift.binary",
    "data_base64" : "aGVsbG8=",
    "actorid" : "u1"
}`, trail.Event{Action: "com.example.someevent", Source: trail.Source{Service: "/mycontext"}, Actor: trail.Actor{ID: "u1"}},
		`{"data_base64":"aGVsbG8="}`},
	{"json-format.md JSON data", `{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "subject": null,
    "id" : "C234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "unsetextension": null,
    "datacontenttype" : "application/json",
    "data" : {
        "appinfoA" : "abc",
        "appinfoB" : 123,
        "appinfoC" : true
    },
    "actorid" : "u1"
}`, trail.Event{Action: "com.example.someevent", Source: trail.Source{Service: "/mycontext"}, Actor: trail.Actor{ID: "u1"}},
		`{"appinfoA":"abc","appinfoB":123,"appinfoC":true}`},
	{"json-format.md XML data", `{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "id" : "B234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "datacontenttype" : "application/xml",
    "data" : "<much wow=\"xml\"/>",
    "actorid" : "u1"
}`, trail.Event{Action: "com.example.someevent", Source: trail.Source{Service: "/mycontext"}, Actor: trail.Actor{ID: "u1"}},
		`{"value":"<much wow=\"xml\"/>"}`},
}

func TestParseCloudEventSpecExamples(t *testing.T) {
	when := time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC)
	for _, tt := range ceSpecExamples {
		t.Run(tt.name, func(t *testing.T) {
			e, err := trail.ParseCloudEvent([]byte(tt.in), trail.DefaultLimits)
			if err != nil {
				t.Fatalf("ParseCloudEvent: %v", err)
			}
			var raw map[string]any
			json.Unmarshal([]byte(tt.in), &raw)
			if want := trail.CloudEventID(raw["source"].(string), raw["id"].(string)); e.ID != want {
				t.Errorf("id: got %q, want %q", e.ID, want)
			}
			if e.Action != tt.want.Action || e.Source != tt.want.Source || e.Actor != tt.want.Actor {
				t.Errorf("got action %q source %+v actor %+v, want %q %+v %+v", e.Action, e.Source, e.Actor, tt.want.Action, tt.want.Source, tt.want.Actor)
			}
			if (e.Target == nil) != (tt.want.Target == nil) || e.Target != nil && *e.Target != *tt.want.Target {
				t.Errorf("target: got %+v, want %+v", e.Target, tt.want.Target)
			}
			if e.Time == nil || !e.Time.Equal(when) {
				t.Errorf("time: got %v, want %v", e.Time, when)
			}
			p, err := trail.Prepare(e, when, func() string { return "unused" })
			if err != nil {
				t.Fatal(err)
			}
			if got := string(p.Data); compact(t, got) != tt.data {
				t.Errorf("data: got %s, want %s", got, tt.data)
			}
		})
	}
}

func compact(tb testing.TB, s string) string {
	tb.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		tb.Fatalf("data %s: %v", s, err)
	}
	return buf.String()
}

func TestParseCloudEventInvalid(t *testing.T) {
	base := `"specversion":"1.0","id":"1","source":"/s","type":"a.b","actorid":"u"`
	for _, tt := range []struct{ name, in, want string }{
		{"no actorid", `{"specversion":"1.0","id":"1","source":"/s","type":"a.b"}`, `"actorid"`},
		{"empty actorid", `{"specversion":"1.0","id":"1","source":"/s","type":"a.b","actorid":""}`, `"actorid"`},
		{"no id", `{"specversion":"1.0","source":"/s","type":"a.b","actorid":"u"}`, `"id"`},
		{"no source", `{"specversion":"1.0","id":"1","type":"a.b","actorid":"u"}`, `"source"`},
		{"old specversion", `{"specversion":"0.3","id":"1","source":"/s","type":"a.b","actorid":"u"}`, `"specversion"`},
		{"uppercase type", `{"specversion":"1.0","id":"1","source":"/s","type":"com.Example.Paid","actorid":"u"}`, `"type"`},
		{"numeric id", `{"specversion":"1.0","id":1,"source":"/s","type":"a.b","actorid":"u"}`, `"id" must be a string`},
		{"duplicate key", `{` + base + `,"type":"c.d"}`, `duplicate key "type"`},
		{"duplicate in data", `{` + base + `,"data":{"k":1,"k":2}}`, `duplicate key "k"`},
		{"data and data_base64", `{` + base + `,"data":{},"data_base64":"aGk="}`, `"data_base64"`},
		{"bad time", `{` + base + `,"time":"yesterday"}`, `"time"`},
		{"array", `[{` + base + `}]`, "JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := trail.ParseCloudEvent([]byte(tt.in), trail.DefaultLimits)
			if trail.ErrorCode(err) != trail.EINVALID || !strings.Contains(trail.ErrorMessage(err), tt.want) {
				t.Errorf("got %v, want %s naming %s", err, trail.EINVALID, tt.want)
			}
		})
	}
}

func TestParseCloudEventBinary(t *testing.T) {
	attrs := map[string]string{"specversion": "1.0", "id": "b-1", "source": "/billing", "type": "invoice.paid", "actorid": "u9", "subject": "inv-7", "tenant": "acme"}
	for _, tt := range []struct{ name, ct, body, data string }{
		{"JSON object", "application/json", `{"amount": 12}`, `{"amount":12}`},
		{"JSON string", "application/json; charset=utf-8", `"paid"`, `{"value":"paid"}`},
		{"+json", "application/vnd.example+json", `[1,2]`, `{"value":[1,2]}`},
		{"text", "text/plain", "hello", `{"value":"hello"}`},
		{"bytes", "application/octet-stream", "\xff\x00", `{"data_base64":"/wA="}`},
		{"no data", "", "", ``},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := trail.ParseCloudEventBinary(attrs, tt.ct, []byte(tt.body), trail.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if e.ID != trail.CloudEventID("/billing", "b-1") || e.Action != "invoice.paid" || e.Tenant != "acme" || e.Target.ID != "inv-7" {
				t.Errorf("got id %q action %q tenant %q target %+v, want the mapped attributes", e.ID, e.Action, e.Tenant, e.Target)
			}
			if got := string(e.Data); tt.data == "" && got != "" || tt.data != "" && compact(t, got) != tt.data {
				t.Errorf("data: got %s, want %s", got, tt.data)
			}
		})
	}
	if _, err := trail.ParseCloudEventBinary(attrs, "application/json", []byte(`{"a":1,"a":2}`), trail.DefaultLimits); trail.ErrorCode(err) != trail.EINVALID {
		t.Errorf("duplicate key in JSON data: got %v, want %s", err, trail.EINVALID)
	}
}

func TestCloudEventID(t *testing.T) {
	// The documented derivation (docs/API.md), pinned: a change would turn
	// every redelivery of an event stored before into a new record.
	if got, want := trail.CloudEventID("/mycontext", "A234-1234-1234"), "ce-"; !strings.HasPrefix(got, want) || len(got) != 29 {
		t.Fatalf("CloudEventID: got %q, want ce- and 26 characters", got)
	}
	if trail.CloudEventID("a", "bc") == trail.CloudEventID("ab", "c") {
		t.Error("CloudEventID: source \"a\" id \"bc\" and source \"ab\" id \"c\" collide, want distinct")
	}
}

func TestTraceID(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", ""},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},
		{"garbage", ""},
	} {
		if got, _ := trail.TraceID(tt.in); got != tt.want {
			t.Errorf("TraceID(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
