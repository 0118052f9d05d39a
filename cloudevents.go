package trail

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"mime"
	"strings"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// CloudEvents media types (CloudEvents 1.0.2, JSON event format and HTTP
// protocol binding). Binary mode has no media type of its own: a request
// with a ce-specversion header is one event, its body the data.
const (
	CloudEventsJSON      = "application/cloudevents+json"
	CloudEventsBatchJSON = "application/cloudevents-batch+json"
)

// CloudEvents attributes that trail maps or understands. Every other
// attribute (datacontenttype aside, which only tells how to read data) is
// accepted and not stored: the record schema has no place for it.
const (
	ceActorID     = "actorid"     // extension: actor.id (required)
	ceTenant      = "tenant"      // extension: tenant
	ceTraceparent = "traceparent" // Distributed Tracing extension: request_id's fallback
)

// stringAttrs are the attributes whose value must be a JSON string.
var stringAttrs = map[string]bool{
	"id": true, "source": true, "specversion": true, "type": true, "subject": true, "time": true,
	"datacontenttype": true, "dataschema": true, ceActorID: true, ceTenant: true, ceTraceparent: true,
}

// CloudEventID returns the record id of the CloudEvent with source and id:
// "ce-" and the first 26 characters of the lowercase, unpadded base32 of
// SHA-256(source, a zero byte, id). CloudEvents makes source plus id
// unique, so a redelivered event gets the same record id and is a replay.
func CloudEventID(source, id string) string {
	sum := sha256.Sum256([]byte(source + "\x00" + id))
	return "ce-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))[:26]
}

// ParseCloudEvent reads one CloudEvent in the structured JSON format
// (application/cloudevents+json) into an event. The reading is as strict
// as ParseEvent's: a duplicate key anywhere is refused. Errors are *Error
// (EINVALID or ETOOLARGE) naming the attribute.
func ParseCloudEvent(b []byte, lim Limits) (*Event, error) {
	b, err := eventObject(b, lim)
	if err != nil {
		return nil, err
	}
	var m map[string]jsontext.Value
	if err := jsonv2.Unmarshal(b, &m, strictJSON); err != nil {
		return nil, jsonError(err)
	}
	attrs := make(map[string]string, len(m))
	for k, v := range m {
		switch {
		case k == "data" || k == "data_base64" || v.Kind() == 'n': // null: unset
		case v.Kind() != '"' && stringAttrs[k]:
			return nil, Errorf(EINVALID, "attribute %q must be a string, not JSON %s", k, jsonKindName(v.Kind()))
		case v.Kind() == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, Errorf(EINVALID, "attribute %q: %v", k, err)
			}
			attrs[k] = s
		default:
			attrs[k] = string(v) // a number or a boolean extension
		}
	}
	var data jsontext.Value
	switch d, d64 := m["data"], m["data_base64"]; {
	case d != nil && d64 != nil:
		return nil, Errorf(EINVALID, "attributes \"data\" and \"data_base64\" both given; send one")
	case d64 != nil:
		if d64.Kind() != '"' {
			return nil, Errorf(EINVALID, "attribute \"data_base64\" must be a string")
		}
		data = jsontext.Value(`{"data_base64":` + string(d64) + `}`)
	case d != nil && d.Kind() != 'n':
		data = d
	}
	return cloudEvent(attrs, data, lim)
}

// ParseCloudEventBatch reads a JSON array of structured CloudEvents
// (application/cloudevents-batch+json). A bad item fails the whole batch,
// as ParseBatch's do.
func ParseCloudEventBatch(b []byte, lim Limits) ([]*Event, error) {
	if !utf8.Valid(b) {
		return nil, Errorf(EINVALID, "request body is not valid UTF-8")
	}
	raws, err := splitArray(b)
	if err != nil {
		return nil, err
	}
	return parseItems(raws, lim, ParseCloudEvent)
}

// ParseCloudEventBinary reads a CloudEvent in the HTTP binary mode: attrs
// holds the ce-* headers by lowercase name without the prefix, already
// percent-decoded, contentType is the datacontenttype and body the data.
// JSON data (application/json or a +json type) is read strictly; other
// data is stored as {"value": text}, or {"data_base64": …} if it is not
// UTF-8.
func ParseCloudEventBinary(attrs map[string]string, contentType string, body []byte, lim Limits) (*Event, error) {
	if lim.MaxEventBytes > 0 && len(body) > lim.MaxEventBytes {
		return nil, Errorf(ETOOLARGE, "event data is %d bytes; the limit is %d", len(body), lim.MaxEventBytes)
	}
	var data jsontext.Value
	if len(body) > 0 {
		mt, _, _ := mime.ParseMediaType(contentType)
		var err error
		switch {
		case mt == "application/json" || strings.HasSuffix(mt, "+json"):
			var v jsontext.Value
			if err = jsonv2.Unmarshal(body, &v, strictJSON); err == nil {
				data = v
			} else {
				err = jsonError(err)
			}
		case utf8.Valid(body):
			data, err = marshal(map[string]string{"value": string(body)})
		default:
			data, err = marshal(map[string][]byte{"data_base64": body})
		}
		if err != nil {
			return nil, Errorf(EINVALID, "event data: %s", ErrorMessage(err))
		}
	}
	return cloudEvent(attrs, data, lim)
}

// cloudEvent maps a CloudEvent's attributes and data onto an event and
// validates it: type → action, source → source.service, subject →
// target.id, time → time, data → data (wrapped as {"value": …} unless it is
// an object), actorid → actor.id, tenant → tenant, and the record id from
// source and id (CloudEventID).
func cloudEvent(attrs map[string]string, data jsontext.Value, lim Limits) (*Event, error) {
	if v := attrs["specversion"]; v != "1.0" {
		return nil, Errorf(EINVALID, "attribute \"specversion\" must be \"1.0\", not %q", v)
	}
	for _, a := range []string{"id", "source", "type", ceActorID} {
		if attrs[a] == "" {
			return nil, Errorf(EINVALID, "attribute %q is required and must be a non-empty string", a)
		}
	}
	if err := validateAction(attrs["type"]); err != nil {
		return nil, Errorf(EINVALID, "attribute \"type\" must be lowercase and dotted, such as \"com.example.invoice.paid\", not %q", attrs["type"])
	}
	w := wireEvent{Actor: &Actor{ID: attrs[ceActorID]}, Source: &Source{Service: attrs["source"]}}
	id, action := CloudEventID(attrs["source"], attrs["id"]), attrs["type"]
	w.ID, w.Action = &id, &action
	if s, ok := attrs["subject"]; ok {
		w.Target = &Target{ID: s}
	}
	if t, ok := attrs["time"]; ok {
		w.Time = &t
	}
	if t, ok := attrs[ceTenant]; ok {
		w.Tenant = &t
	}
	if data != nil && data.Kind() != '{' {
		b, err := marshal(map[string]json.RawMessage{"value": json.RawMessage(data)})
		if err != nil {
			return nil, Errorf(EINVALID, "event data: %v", err)
		}
		data = b
	}
	w.Data = data
	e, err := w.finish(lim)
	if err != nil {
		return nil, err
	}
	if tp, ok := attrs[ceTraceparent]; ok {
		e.TraceID, _ = TraceID(tp)
	}
	return e, nil
}

// marshal encodes data that trail builds around a CloudEvent's: map keys
// in order, and <, > and & as they are, as records hold strings.
func marshal(v any) ([]byte, error) {
	return jsonv2.Marshal(v, jsonv2.Deterministic(true))
}
