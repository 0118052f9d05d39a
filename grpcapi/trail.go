package grpcapi

import (
	"context"

	"connectrpc.com/connect"
	"github.com/trail-audit/trail"
	trailv1 "github.com/trail-audit/trail/gen/trail/v1"
	"github.com/trail-audit/trail/gen/trail/v1/trailv1connect"
)

// List limits, as GET /logs's.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// trailService implements trail.v1.TrailService.
type trailService struct{ s *server }

var _ trailv1connect.TrailServiceHandler = (*trailService)(nil)

// Append stores the events atomically and answers with their receipts
// once the commit is durable.
func (t *trailService) Append(ctx context.Context, req *connect.Request[trailv1.AppendRequest]) (*connect.Response[trailv1.AppendResponse], error) {
	s := t.s
	events, err := s.parseEvents(ctx, req.Header().Get("Traceparent"), inputs(req.Msg.GetEvents()))
	var res *trail.Result
	if err == nil {
		res, err = s.ingester.Submit(ctx, events)
	}
	if err != nil {
		return nil, s.error(ctx, req.Spec().Procedure, err)
	}
	out := &trailv1.AppendResponse{Created: res.Created}
	for _, r := range res.Receipts {
		out.Receipts = append(out.Receipts, receipt(r))
	}
	return connect.NewResponse(out), nil
}

// inputs returns each event as one JSON object for trail.ParseEvents,
// which names every bad item; an empty input becomes nothing, which it
// refuses as not an object.
func inputs(in []*trailv1.EventInput) [][]byte {
	raws := make([][]byte, len(in))
	for i, e := range in {
		switch ev := e.GetEvent().(type) {
		case *trailv1.EventInput_Structured:
			raws[i] = eventJSON(ev.Structured)
		case *trailv1.EventInput_Json:
			raws[i] = ev.Json
		}
	}
	return raws
}

// Get returns a record's bytes verbatim and its receipt. Another tenant's
// record is answered as a missing one.
func (t *trailService) Get(ctx context.Context, req *connect.Request[trailv1.GetRequest]) (*connect.Response[trailv1.GetResponse], error) {
	e, err := t.s.visible(ctx, req.Msg.GetId())
	if err != nil {
		return nil, t.s.error(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&trailv1.GetResponse{Record: record(e)}), nil
}

// visible reads the record with the id if the caller may see it
// (trail.GetVisible).
func (s *server) visible(ctx context.Context, id string) (*trail.Entry, error) {
	if err := trail.ValidateID(id); err != nil {
		return nil, err
	}
	return trail.GetVisible(ctx, s.store, id)
}

// List returns a page of the records that match the filter, newest first
// unless the order says otherwise, and the cursor of the next page.
func (t *trailService) List(ctx context.Context, req *connect.Request[trailv1.ListRequest]) (*connect.Response[trailv1.ListResponse], error) {
	s := t.s
	entries, next, err := s.list(ctx, req.Msg)
	if err != nil {
		return nil, s.error(ctx, req.Spec().Procedure, err)
	}
	out := &trailv1.ListResponse{NextCursor: next}
	for _, e := range entries {
		out.Records = append(out.Records, record(e))
	}
	return connect.NewResponse(out), nil
}

// list reads one page for List.
func (s *server) list(ctx context.Context, m *trailv1.ListRequest) ([]*trail.Entry, string, error) {
	f, err := filter(ctx, m.GetFilter())
	if err != nil {
		return nil, "", err
	}
	switch m.GetOrder() {
	case trailv1.Order_ORDER_UNSPECIFIED, trailv1.Order_ORDER_DESC:
		f.Desc = true
	case trailv1.Order_ORDER_ASC:
	default:
		return nil, "", trail.Errorf(trail.EINVALID, "field \"order\" must be ORDER_ASC or ORDER_DESC, not %d", m.GetOrder())
	}
	if c := m.GetCursor(); c != "" {
		if f.After, err = trail.ParseCursor(c); err != nil {
			return nil, "", err
		}
	}
	limit := int(m.GetLimit())
	switch {
	case limit == 0:
		limit = defaultListLimit
	case limit < 0 || limit > maxListLimit:
		return nil, "", trail.Errorf(trail.EINVALID, "field \"limit\" must be from 1 to %d (0: %d), not %d", maxListLimit, defaultListLimit, limit)
	}
	f.Limit = limit + 1 // one more tells whether a next page exists
	entries, err := s.store.List(ctx, f)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(entries) > limit {
		entries = entries[:limit]
		next = trail.CursorOf(entries[limit-1]).String()
	}
	return entries, next, nil
}
