package httpapi

import (
	"bytes"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trail-audit/trail"
)

// Body kinds POST /logs accepts.
const (
	bodyJSON   = iota + 1 // one object, or an array of them
	bodyNDJSON            // one object per line
	bodyCE                // CloudEvents, in any mode (cloudevents.go)
)

// ndjsonTypes are the media types of newline-delimited JSON, in the order
// docs/API.md lists them.
var ndjsonTypes = []string{"application/x-ndjson", "application/ndjson", "application/jsonl"}

// handleLogsCreate ingests one event, a JSON array of events or NDJSON. It
// answers only after the ingester reports the events durable.
func (s *server) handleLogsCreate(w http.ResponseWriter, r *http.Request) {
	kind, err := requestBodyKind(r.Header)
	if err != nil {
		w.Header().Set("Accept-Post", "application/json, application/x-ndjson, "+trail.CloudEventsJSON+", "+trail.CloudEventsBatchJSON)
		s.error(w, r, err)
		return
	}
	h := hold{b: &s.bodies}
	defer h.release() // after the answer: the events live as long as the request
	body, err := s.readBody(w, r, &h)
	if err != nil {
		s.error(w, r, err)
		return
	}

	// A source-bound key may leave source.service out; CheckEvents fills it.
	lim := s.limits
	if p := trail.PrincipalFromContext(r.Context()); p != nil {
		lim.DefaultSource = p.Source
	}
	var events []*trail.Event
	single := false
	switch {
	case kind == bodyCE:
		events, single, err = parseCloudEvents(r.Header, body, lim)
	case len(bytes.TrimSpace(body)) == 0:
		err = trail.Errorf(trail.EINVALID, "request body is empty; send an event object, an array of events or NDJSON")
	case kind == bodyNDJSON:
		events, err = trail.ParseNDJSON(body, lim)
	case bytes.TrimLeft(body, " \t\r\n")[0] == '[':
		events, err = trail.ParseBatch(body, lim)
	default:
		var e *trail.Event
		e, err = trail.ParseEvent(body, lim)
		events, single = []*trail.Event{e}, true
	}
	if err == nil {
		trail.SetTraceIDs(r.Header.Get("Traceparent"), events)
		// The one place a write meets its key: bindings, key_id, rate.
		p := trail.PrincipalFromContext(r.Context())
		if err = p.CheckEvents(events); err == nil {
			err = s.allow(p, len(events))
		}
	}
	if err != nil {
		s.error(w, r, err)
		return
	}

	res, err := s.ingester.Submit(r.Context(), events)
	if err != nil {
		s.error(w, r, err)
		return
	}
	status := http.StatusOK // every event was a replay
	if res.Created {
		status = http.StatusCreated
	}
	w.Header().Set("Cache-Control", "no-store")
	single = single && len(res.Receipts) == 1
	if single {
		w.Header().Set("Location", "/logs/"+res.Receipts[0].ID)
	}
	writeReceipts(w, status, res.Receipts, single)
}

// requestBodyKind reads Content-Type (and Content-Encoding) to choose a
// parser. Errors are EUNSUPPORTED.
func requestBodyKind(h http.Header) (int, error) {
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return 0, trail.Errorf(trail.EUNSUPPORTED, "Content-Encoding %q is not supported; send the body uncompressed", ce)
	}
	if h.Get("Ce-Specversion") != "" {
		return bodyCE, nil // binary mode: any Content-Type, or none
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return 0, trail.Errorf(trail.EUNSUPPORTED, "Content-Type is missing; send application/json or application/x-ndjson")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, trail.Errorf(trail.EUNSUPPORTED, "Content-Type %q is malformed; send application/json or application/x-ndjson", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return 0, trail.Errorf(trail.EUNSUPPORTED, "charset %q is not supported; events are UTF-8", cs)
	}
	switch {
	case mt == "application/json":
		return bodyJSON, nil
	case slices.Contains(ndjsonTypes, mt):
		return bodyNDJSON, nil
	case mt == trail.CloudEventsJSON || mt == trail.CloudEventsBatchJSON:
		return bodyCE, nil
	}
	return 0, trail.Errorf(trail.EUNSUPPORTED, "Content-Type %q is not supported; send application/json or application/x-ndjson", mt)
}

// handleLogsGet serves a record's stored bytes verbatim. They never change,
// so caches may keep them forever; the ETag is the record's leaf hash.
func (s *server) handleLogsGet(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := trail.ValidateID(id); err != nil {
		s.error(w, r, err)
		return
	}
	e, err := s.visible(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	etag := `"` + leafHash(e).String() + `"` // tlog.Hash.String is standard base64
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", recordCacheControl(r.Context()))
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(e.Bytes)))
	w.WriteHeader(http.StatusOK)
	w.Write(e.Bytes)
}

// etagMatch reports whether an If-None-Match list matches etag, by the weak
// comparison RFC 9110 §13.1.2 asks for.
func etagMatch(list, etag string) bool {
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// List limits.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// listParams are the query parameters GET /logs takes.
var listParams = []string{"tenant", "actor", "actor_type", "action", "target", "target_type", "source", "outcome", "since", "until", "order", "limit", "cursor", "format"}

// handleLogsIndex lists records by filter, a page at a time with a cursor,
// or streams every match as NDJSON if the client accepts it.
func (s *server) handleLogsIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Vary", "Accept")
	q := r.URL.Query()
	format, err := downloadFormat(q)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if format == nil && acceptsNDJSON(r.Header) {
		format = &ndjsonStream
	}
	f, limit, err := parseListQuery(q, format != nil)
	if err == nil {
		err = trail.PrincipalFromContext(r.Context()).NarrowFilter(f)
	}
	if err != nil {
		s.error(w, r, err)
		return
	}
	if format != nil {
		s.streamLogs(w, r, f, limit, format)
		return
	}
	s.listPage(w, r, f, limit)
}

// acceptsNDJSON reports whether the client prefers NDJSON to JSON.
func acceptsNDJSON(h http.Header) bool {
	var qJSON, qNDJSON float64 = -1, -1
	for _, v := range h.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if qs, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(qs, 64); err != nil {
					continue
				}
			}
			switch {
			case slices.Contains(ndjsonTypes, mt):
				qNDJSON = max(qNDJSON, q)
			case mt == "application/json" || mt == "application/*" || mt == "*/*":
				qJSON = max(qJSON, q)
			}
		}
	}
	return qNDJSON > 0 && qNDJSON >= qJSON
}

// parseListQuery turns GET /logs's query into a filter and a page size (a
// cap on the whole stream if stream, 0 meaning none). Errors are EINVALID
// and name the parameter.
func parseListQuery(q url.Values, stream bool) (*trail.Filter, int, error) {
	if err := checkQuery(q, listParams...); err != nil {
		return nil, 0, err
	}

	f := &trail.Filter{
		Tenant:     q.Get("tenant"),
		Actor:      q.Get("actor"),
		ActorType:  q.Get("actor_type"),
		Target:     q.Get("target"),
		TargetType: q.Get("target_type"),
		Source:     q.Get("source"),
		Outcome:    q.Get("outcome"),
	}
	if err := f.SetAction(q.Get("action")); err != nil {
		return nil, 0, err
	}
	switch f.Outcome {
	case "", trail.OutcomeSuccess, trail.OutcomeFailure, trail.OutcomeUnknown:
	default:
		return nil, 0, trail.Errorf(trail.EINVALID, "parameter \"outcome\" must be success, failure or unknown, not %q", f.Outcome)
	}
	for _, p := range []struct {
		name string
		set  func(time.Time)
	}{{"since", f.SetSince}, {"until", f.SetUntil}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, 0, trail.Errorf(trail.EINVALID, "parameter %q must be an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", p.name, v)
		}
		p.set(t) // exact for any year 0000-9999 (see trail.Filter.SetSince)
	}
	switch q.Get("order") {
	case "", "desc":
		f.Desc = true
	case "asc":
	default:
		return nil, 0, trail.Errorf(trail.EINVALID, "parameter \"order\" must be asc or desc, not %q", q.Get("order"))
	}
	if c := q.Get("cursor"); c != "" {
		cur, err := trail.ParseCursor(c)
		if err != nil {
			return nil, 0, err
		}
		f.After = cur
	}

	limit := defaultListLimit
	if stream {
		limit = 0
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case stream && (err != nil || n < 1):
			return nil, 0, trail.Errorf(trail.EINVALID, "parameter \"limit\" must be a positive integer, not %q", v)
		case !stream && (err != nil || n < 1 || n > maxListLimit):
			return nil, 0, trail.Errorf(trail.EINVALID, "parameter \"limit\" must be an integer from 1 to %d, not %q", maxListLimit, v)
		}
		limit = n
	}
	return f, limit, nil
}
