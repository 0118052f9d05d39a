package grpcapi

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/trail-audit/trail"
	trailv1 "github.com/trail-audit/trail/gen/trail/v1"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// jsonEvent is a structured event written as the JSON of POST /logs, so
// that messages pass through trail.ParseEvent: one validation path, the
// REST API's, for every transport.
type jsonEvent struct {
	ID        string          `json:"id,omitempty"`
	Time      string          `json:"time,omitempty"`
	Tenant    string          `json:"tenant,omitempty"`
	Actor     *trail.Actor    `json:"actor,omitempty"`
	Action    string          `json:"action,omitempty"`
	Target    *trail.Target   `json:"target,omitempty"`
	Source    *trail.Source   `json:"source,omitempty"`
	Outcome   string          `json:"outcome,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// eventJSON encodes a structured event as POST /logs JSON. data_json that
// is not JSON travels as a JSON string, which ParseEvent refuses as not an
// object, so that every check stays in one place.
func eventJSON(e *trailv1.Event) []byte {
	j := jsonEvent{
		ID: e.GetId(), Tenant: e.GetTenant(), Action: e.GetAction(),
		Outcome: e.GetOutcome(), RequestID: e.GetRequestId(),
	}
	if e.Time != nil {
		j.Time = timeString(e.Time)
	}
	if a := e.GetActor(); a != nil {
		j.Actor = &trail.Actor{ID: a.GetId(), Type: a.GetType(), Name: a.GetName(), IP: a.GetIp()}
	}
	if t := e.GetTarget(); t != nil {
		j.Target = &trail.Target{ID: t.GetId(), Type: t.GetType()}
	}
	if src := e.GetSource(); src != nil {
		j.Source = &trail.Source{Service: src.GetService(), Host: src.GetHost(), IP: src.GetIp()}
	}
	if d := e.GetDataJson(); d != "" {
		j.Data = json.RawMessage(d)
		if !json.Valid(j.Data) {
			j.Data, _ = json.Marshal(d)
		}
	}
	return marshal(j)
}

// marshal encodes v as JSON without escaping <, > and &, so that strings
// reach the record as sent, as they do over REST.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("grpcapi: encode event: " + err.Error()) // only strings and valid JSON
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// timeString formats a timestamp as RFC 3339 for ParseEvent, which checks
// its range; an invalid timestamp gets a string ParseEvent refuses.
func timeString(ts *timestamppb.Timestamp) string {
	if err := ts.CheckValid(); err != nil {
		return "invalid timestamp"
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}

// parseEvents parses what Append and CreateLog send, one JSON object per
// event, by the rules of POST /logs: a single event as ParseEvent takes
// it, several as one atomic batch, whose error names each bad item. The
// call's traceparent (metadata) correlates them, as POST /logs's header.
func (s *server) parseEvents(ctx context.Context, traceparent string, raws [][]byte) ([]*trail.Event, error) {
	lim := s.limits
	p := trail.PrincipalFromContext(ctx)
	if p != nil {
		lim.DefaultSource = p.Source // a source-bound key may leave it out
	}
	var events []*trail.Event
	if len(raws) == 1 {
		e, err := trail.ParseEvent(raws[0], lim)
		if err != nil {
			return nil, err
		}
		events = []*trail.Event{e}
	} else {
		var err error
		if events, err = trail.ParseEvents(raws, lim); err != nil {
			return nil, err
		}
	}
	trail.SetTraceIDs(traceparent, events)
	// The one place a write meets its key: bindings, key_id, rate.
	if err := p.CheckEvents(events); err != nil {
		return nil, err
	}
	return events, s.allow(p, len(events))
}

// receipt converts a receipt.
func receipt(r trail.Receipt) *trailv1.Receipt {
	return &trailv1.Receipt{
		Id: r.ID, Log: r.Log, Seq: r.Seq, ReceivedAt: timestamppb.New(r.ReceivedAt), LeafHash: r.LeafHash[:],
	}
}

// record converts a stored entry: its bytes verbatim, its receipt, and the
// cursor just at it.
func record(e *trail.Entry) *trailv1.Record {
	lh := tlog.RecordHash(e.Bytes)
	if len(e.Hashes) > 0 {
		lh = e.Hashes[0]
	}
	r := trail.Receipt{ID: e.ID, Log: e.Log, Seq: e.Seq, ReceivedAt: e.ReceivedAt, LeafHash: lh}
	return &trailv1.Record{Json: e.Bytes, Receipt: receipt(r), Cursor: trail.CursorOf(e).String()}
}

// filter converts a filter as GET /logs's query does, and narrows it to
// what the caller may read. Errors name the field.
func filter(ctx context.Context, pf *trailv1.Filter) (*trail.Filter, error) {
	f := &trail.Filter{
		Tenant: pf.GetTenant(), Actor: pf.GetActor(), ActorType: pf.GetActorType(), Target: pf.GetTarget(),
		TargetType: pf.GetTargetType(), Source: pf.GetSource(), Outcome: pf.GetOutcome(),
	}
	if err := f.SetAction(pf.GetAction()); err != nil {
		return nil, err
	}
	switch f.Outcome {
	case "", trail.OutcomeSuccess, trail.OutcomeFailure, trail.OutcomeUnknown:
	default:
		return nil, trail.Errorf(trail.EINVALID, "filter field \"outcome\" must be success, failure or unknown, not %q", f.Outcome)
	}
	for _, b := range []struct {
		name string
		ts   *timestamppb.Timestamp
		set  func(time.Time)
	}{{"since", pf.GetSince(), f.SetSince}, {"until", pf.GetUntil(), f.SetUntil}} {
		if b.ts == nil {
			continue
		}
		if err := b.ts.CheckValid(); err != nil {
			return nil, trail.Errorf(trail.EINVALID, "filter field %q is not a valid timestamp", b.name)
		}
		b.set(b.ts.AsTime())
	}
	if err := trail.PrincipalFromContext(ctx).NarrowFilter(f); err != nil {
		return nil, err
	}
	return f, nil
}
