package trail

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Actor is who did it.
type Actor struct {
	ID   string `json:"id"`
	Type string `json:"type,omitempty"`
	Name string `json:"name,omitempty"`
	IP   string `json:"ip,omitempty"`
}

// Target is what it was done to.
type Target struct {
	ID   string `json:"id,omitempty"`
	Type string `json:"type,omitempty"`
}

// Source is where the event was reported from.
type Source struct {
	Service string `json:"service"`
	Host    string `json:"host,omitempty"`
	IP      string `json:"ip,omitempty"`
}

// Outcomes an event may report.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeUnknown = "unknown"
)

// Event is what a producer sends, after validation and the mapping of the
// legacy proof-of-concept shape. Its JSON encoding is canonical: the same
// event always encodes to the same bytes, which is what idempotency compares.
type Event struct {
	ID        string          `json:"id,omitempty"`
	Time      *time.Time      `json:"time,omitempty"` // nil: defaults to received_at
	Tenant    string          `json:"tenant,omitempty"`
	Actor     Actor           `json:"actor"`
	Action    string          `json:"action"`
	Target    *Target         `json:"target,omitempty"`
	Source    Source          `json:"source"`
	Outcome   string          `json:"outcome,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`

	// maxRecord bounds the stored record's size (Prepare); 0 means
	// DefaultLimits.MaxEventBytes. ParseEvent sets it from its Limits.
	maxRecord int

	// dataValid is true when Data is known to be valid JSON (ParseEvent
	// read it), so that Prepare need not check it again.
	dataValid bool

	// KeyID is the id of the API key that writes the event, set by the
	// server (Principal.CheckEvents), never read from the input. It is
	// outside the canonical encoding, so the idempotency digest ignores it:
	// a replay of an id by another key keeps the original record.
	KeyID string `json:"-"`

	// TraceID is the trace id of the request's W3C traceparent (or of a
	// CloudEvent's traceparent extension), set by the server. The record's
	// request_id takes it when the event has none. Like KeyID it is outside
	// the canonical encoding: a redelivery in another trace is a replay,
	// not a conflict.
	TraceID string `json:"-"`
}

// wireEvent is the input shape: the event schema plus the legacy fields.
type wireEvent struct {
	ID        *string        `json:"id"`
	Time      *string        `json:"time"`
	Tenant    *string        `json:"tenant"`
	Actor     *Actor         `json:"actor"`
	Action    *string        `json:"action"`
	Target    *Target        `json:"target"`
	Source    *Source        `json:"source"`
	Outcome   *string        `json:"outcome"`
	RequestID *string        `json:"request_id"`
	Data      jsontext.Value `json:"data"`

	// The proof of concept's shape (DESIGN.md §2).
	UserID        *string        `json:"user_id"`
	EventType     *string        `json:"event_type"`
	Timestamp     *string        `json:"timestamp"`
	SrcService    *string        `json:"src_service"`
	InvariantData jsontext.Value `json:"invariant_data"`
	AppData       jsontext.Value `json:"app_data"`
	VariantData   jsontext.Value `json:"variant_data"`

	// vals holds what the pointers above point to, so that decodeEvent
	// allocates once for all of them.
	vals struct {
		strs   [10]string
		actor  Actor
		target Target
		source Source
	}
}

// Field limits.
const (
	MaxActionLen = 128
	MaxIDLen     = 128
	maxFieldLen  = 1024
)

// Times outside this range are rejected: they do not fit the int64
// nanoseconds that the stores index.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ParseEvent decodes and validates one event in JSON. Errors are *Error with
// code EINVALID (or ETOOLARGE) and a message that names the field. The
// reading is strict (see strictJSON): duplicate keys, field names in another
// case and lone surrogates are refused.
func ParseEvent(b []byte, lim Limits) (*Event, error) {
	b, err := eventObject(b, lim)
	if err != nil {
		return nil, err
	}
	var w wireEvent
	if err := decodeEvent(b, &w); err != nil {
		return nil, err
	}
	return w.finish(lim)
}

// finish makes the decoded w an event: the key's default source, the
// legacy mapping, validation, and what Prepare needs to know.
func (w *wireEvent) finish(lim Limits) (*Event, error) {
	if lim.DefaultSource != "" && w.SrcService == nil {
		if w.Source == nil {
			w.Source = &Source{}
		}
		if w.Source.Service == "" {
			w.Source.Service = lim.DefaultSource
		}
	}
	e, err := w.event()
	if err != nil {
		return nil, err
	}
	e.maxRecord = lim.MaxEventBytes
	e.dataValid = true // the strict decoder read it
	return e, nil
}

// eventObject checks one event's size and encoding, and that it is a JSON
// object, before it is decoded; it returns b without surrounding space.
func eventObject(b []byte, lim Limits) ([]byte, error) {
	if lim.MaxEventBytes > 0 && len(b) > lim.MaxEventBytes {
		return nil, Errorf(ETOOLARGE, "event is %d bytes; the limit is %d", len(b), lim.MaxEventBytes)
	}
	if !utf8.Valid(b) {
		return nil, Errorf(EINVALID, "event is not valid UTF-8")
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, Errorf(EINVALID, "event must be a JSON object")
	}
	return b, nil
}

// pick returns the field an event gives, either v or its legacy twin as
// from maps it, and refuses both.
func pick[T any](name string, v *T, legacyName string, legacy *string, from func(string) T) (T, error) {
	var zero T
	switch {
	case v != nil && legacy != nil:
		return zero, Errorf(EINVALID, "fields %q and %q both given; send one", name, legacyName)
	case v != nil:
		return *v, nil
	case legacy != nil:
		return from(*legacy), nil
	}
	return zero, nil
}

// event validates w, maps the legacy fields, and normalizes.
func (w *wireEvent) event() (*Event, error) {
	var e Event
	var err error

	// Legacy mapping.
	if e.Actor, err = pick("actor", w.Actor, "user_id", w.UserID, func(id string) Actor { return Actor{ID: id} }); err != nil {
		return nil, err
	}
	if e.Source, err = pick("source", w.Source, "src_service", w.SrcService, func(s string) Source { return Source{Service: s} }); err != nil {
		return nil, err
	}
	if e.Action, err = pick("action", w.Action, "event_type", w.EventType, strings.ToLower); err != nil {
		return nil, err
	}
	if e.Time, err = w.time(); err != nil {
		return nil, err
	}
	if e.Data, err = w.data(); err != nil {
		return nil, err
	}

	if w.ID != nil {
		e.ID = *w.ID
		if err := ValidateID(e.ID); err != nil {
			return nil, err
		}
	}
	if w.Tenant != nil {
		e.Tenant = *w.Tenant
	}
	if w.Target != nil && *w.Target != (Target{}) {
		t := *w.Target // not a pointer into w, which the event would keep
		e.Target = &t
	}
	e.Outcome = OutcomeUnknown
	if w.Outcome != nil {
		e.Outcome = *w.Outcome
	}
	if w.RequestID != nil {
		e.RequestID = *w.RequestID
	}
	return &e, e.Validate()
}

// time returns the event's time, from time or its legacy twin timestamp.
func (w *wireEvent) time() (*time.Time, error) {
	name, ts := "time", w.Time
	if w.Timestamp != nil {
		if w.Time != nil {
			return nil, Errorf(EINVALID, "fields \"time\" and \"timestamp\" both given; send one")
		}
		name, ts = "timestamp", w.Timestamp
	}
	if ts == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *ts)
	if err != nil {
		return nil, Errorf(EINVALID, "field %q must be an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", name, *ts)
	}
	t = t.UTC()
	if t.Before(minTime) || !t.Before(maxTime) {
		return nil, Errorf(EINVALID, "field %q is out of range: %s (want 1970-01-01 to 2261-12-31, UTC)", name, *ts)
	}
	return &t, nil
}

// data returns the data object, built from the legacy fields if need be.
func (w *wireEvent) data() (json.RawMessage, error) {
	legacy := w.InvariantData != nil || w.AppData != nil || w.VariantData != nil
	if w.Data != nil && legacy {
		return nil, Errorf(EINVALID, "field \"data\" and the legacy invariant_data/app_data fields both given; send one")
	}
	if !legacy {
		if w.Data == nil {
			return nil, nil
		}
		if w.Data.Kind() != '{' {
			return nil, Errorf(EINVALID, "field \"data\" must be a JSON object")
		}
		return json.RawMessage(w.Data), nil
	}
	if w.AppData != nil && w.VariantData != nil {
		return nil, Errorf(EINVALID, "fields \"app_data\" and \"variant_data\" both given; send one")
	}
	// As encoding/json writes the map {"app": ..., "invariant": ...}.
	b := []byte{'{'}
	app := w.AppData
	if app == nil {
		app = w.VariantData
	}
	if app != nil {
		b = appendCompact(append(b, `"app":`...), app, false)
	}
	if w.InvariantData != nil {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendCompact(append(b, `"invariant":`...), w.InvariantData, false)
	}
	return append(b, '}'), nil
}

// Validate checks the event's fields. Errors name the field.
func (e *Event) Validate() error {
	if e.Action == "" {
		return Errorf(EINVALID, "field \"action\" is required (legacy: \"event_type\")")
	}
	if err := validateAction(e.Action); err != nil {
		return err
	}
	if e.Actor.ID == "" {
		return Errorf(EINVALID, "field \"actor.id\" is required (legacy: \"user_id\")")
	}
	if e.Source.Service == "" {
		return Errorf(EINVALID, "field \"source.service\" is required (legacy: \"src_service\")")
	}
	for _, f := range []struct{ name, v string }{{"actor.id", e.Actor.ID}, {"source.service", e.Source.Service}} {
		if strings.TrimSpace(f.v) == "" {
			return Errorf(EINVALID, "field %q must not be blank", f.name)
		}
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeFailure, OutcomeUnknown:
	default:
		return Errorf(EINVALID, "field \"outcome\" must be success, failure or unknown, not %q", e.Outcome)
	}
	for _, f := range []struct{ name, v string }{
		{"tenant", e.Tenant}, {"actor.id", e.Actor.ID}, {"actor.type", e.Actor.Type},
		{"actor.name", e.Actor.Name}, {"actor.ip", e.Actor.IP}, {"source.service", e.Source.Service},
		{"source.host", e.Source.Host}, {"source.ip", e.Source.IP}, {"request_id", e.RequestID},
		{"target.id", targetField(e.Target, true)}, {"target.type", targetField(e.Target, false)},
	} {
		if len(f.v) > maxFieldLen {
			return Errorf(EINVALID, "field %q is %d bytes; the limit is %d", f.name, len(f.v), maxFieldLen)
		}
		// Indexed fields reach logs, terminals and CSV exports; a newline or
		// an escape sequence there forges lines. Only data is free.
		if i := strings.IndexFunc(f.v, isC0); i >= 0 {
			return Errorf(EINVALID, "field %q holds control character U+%04X; control characters are allowed only in \"data\"", f.name, f.v[i])
		}
	}
	return nil
}

func isC0(r rune) bool { return r < 0x20 }

func targetField(t *Target, id bool) string {
	if t == nil {
		return ""
	} else if id {
		return t.ID
	}
	return t.Type
}

// validateAction checks that a is lowercase and dotted: segments of a-z, 0-9,
// '_' and '-', joined by single dots.
func validateAction(a string) error {
	if len(a) > MaxActionLen {
		return Errorf(EINVALID, "field \"action\" is %d characters; the limit is %d", len(a), MaxActionLen)
	}
	prevDot := true
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			prevDot = false
		case c == '.' && !prevDot:
			prevDot = true
		default:
			return Errorf(EINVALID, "field \"action\" must be lowercase and dotted, such as \"account.suspended\", not %q", a)
		}
	}
	if prevDot {
		return Errorf(EINVALID, "field \"action\" must be lowercase and dotted, such as \"account.suspended\", not %q", a)
	}
	return nil
}

// ValidateID checks a client-chosen or requested id: 1 to 128 characters of
// A-Z, a-z, 0-9 and "-_.:", and not "." or "..", so that it is one clean
// URL path segment: /logs/.. would resolve to /.
func ValidateID(id string) error {
	if id == "" || len(id) > MaxIDLen {
		return Errorf(EINVALID, "field \"id\" must be 1 to %d characters", MaxIDLen)
	}
	if id == "." || id == ".." {
		return Errorf(EINVALID, "field \"id\" may not be %q: it is not a path segment of its own", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return Errorf(EINVALID, "field \"id\" may hold only letters, digits and \"-_.:\", not %q", id)
		}
	}
	return nil
}

// ParseBatch splits a JSON array of events and parses each. A bad item fails
// the whole batch; the *Error lists every bad item's index and reason.
func ParseBatch(b []byte, lim Limits) ([]*Event, error) {
	if !utf8.Valid(b) {
		return nil, Errorf(EINVALID, "request body is not valid UTF-8")
	}
	if events, ok := parseBatchFast(b, lim); ok {
		return events, nil
	}
	raws, err := splitArray(b)
	if err != nil {
		return nil, err
	}
	return parseItems(raws, lim, ParseEvent)
}

// ParseNDJSON parses newline-delimited events; blank lines are skipped.
func ParseNDJSON(b []byte, lim Limits) ([]*Event, error) {
	var raws [][]byte
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		raws = append(raws, line)
	}
	return parseItems(raws, lim, ParseEvent)
}

// ParseEvents parses a batch that arrives already split, one JSON object
// per item (as gRPC's Append sends it), with the rules of ParseBatch.
func ParseEvents(raws [][]byte, lim Limits) ([]*Event, error) {
	return parseItems(raws, lim, ParseEvent)
}

// parseItems parses each item of a batch with parse, and refuses the
// batch with every bad item's index and reason, or with a repeated id.
func parseItems(raws [][]byte, lim Limits, parse func([]byte, Limits) (*Event, error)) ([]*Event, error) {
	if len(raws) == 0 {
		return nil, Errorf(EINVALID, "batch is empty; send at least one event")
	}
	if lim.MaxBatchEvents > 0 && len(raws) > lim.MaxBatchEvents {
		return nil, Errorf(ETOOLARGE, "batch has %d events; the limit is %d", len(raws), lim.MaxBatchEvents)
	}
	events := make([]*Event, len(raws))
	var bad []ItemError
	code := EINVALID
	seen := make(map[string]int)
	for i, raw := range raws {
		e, err := parse(raw, lim)
		if err != nil {
			if ErrorCode(err) == ETOOLARGE {
				code = ETOOLARGE
			}
			bad = append(bad, ItemError{Index: i, Reason: ErrorMessage(err)})
			continue
		}
		if e.ID != "" {
			if j, ok := seen[e.ID]; ok {
				bad = append(bad, ItemError{Index: i, Reason: fmt.Sprintf("id %q repeats the id of item %d", e.ID, j)})
				continue
			}
			seen[e.ID] = i
		}
		events[i] = e
	}
	if len(bad) > 0 {
		msg := fmt.Sprintf("%d of %d events are invalid; first: item %d: %s", len(bad), len(raws), bad[0].Index, bad[0].Reason)
		if len(bad) == 1 {
			msg = fmt.Sprintf("item %d: %s", bad[0].Index, bad[0].Reason)
		}
		return nil, &Error{Code: code, Message: msg, Items: bad}
	}
	return events, nil
}
