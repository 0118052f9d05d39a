package grpcapi

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/trail-audit/trail"
	trailv1 "github.com/trail-audit/trail/gen/trail/v1"
)

// tailPage is how many records one poll of Tail reads at most.
const tailPage = 1000

// Tail streams the records that match the filter, oldest first, from
// after the cursor (or from now) until the client goes away. It polls the
// store every TailPoll with the filter and a cursor, as a client paging
// GET /logs would (docs/API.md says what that implies).
func (t *trailService) Tail(ctx context.Context, req *connect.Request[trailv1.TailRequest], stream *connect.ServerStream[trailv1.TailResponse]) error {
	s := t.s
	fail := func(err error) error { return s.error(ctx, req.Spec().Procedure, err) }
	f, err := filter(ctx, req.Msg.GetFilter())
	if err != nil {
		return fail(err)
	}
	if c := req.Msg.GetCursor(); c != "" {
		if f.After, err = trail.ParseCursor(c); err != nil {
			return fail(err)
		}
	} else if f.After, err = s.newest(ctx, *f); err != nil {
		return fail(err)
	}
	// The headers tell the client that the tail has its start: whatever
	// is committed from here on is sent.
	if err := stream.Send(nil); err != nil {
		return err
	}
	tick := time.NewTicker(s.tailPoll)
	defer tick.Stop()
	for {
		f.Limit = tailPage
		entries, err := s.store.List(ctx, f)
		if err != nil {
			return fail(err)
		}
		for _, e := range entries {
			if err := stream.Send(&trailv1.TailResponse{Record: record(e)}); err != nil {
				return err // the client is gone
			}
		}
		if len(entries) > 0 {
			f.After = trail.CursorOf(entries[len(entries)-1])
		}
		if len(entries) == tailPage {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
			return ctx.Err() // Canceled, or DeadlineExceeded at the call's deadline
		case <-tick.C:
		}
	}
}

// newest returns the cursor of the newest record that matches f, or nil if
// none does, so that a Tail without a cursor starts after it.
func (s *server) newest(ctx context.Context, f trail.Filter) (*trail.Cursor, error) {
	f.Desc, f.Limit, f.After = true, 1, nil
	entries, err := s.store.List(ctx, &f)
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	return trail.CursorOf(entries[0]), nil
}
