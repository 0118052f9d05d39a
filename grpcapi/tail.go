package grpcapi

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/trail-audit/trail"
	trailv1 "github.com/trail-audit/trail/gen/trail/v1"
	"github.com/trail-audit/trail/tail"
)

// tailWait is how long Tail waits on the hub before it looks at the call
// again; a quiet stream sends nothing (HTTP/2 keeps the connection alive).
const tailWait = time.Minute

// Tail streams the records that match the filter in commit order, as GET
// /logs/stream does (package tail): from the next commit, or right after
// the cursor with nothing skipped or repeated. It ends with Unavailable
// when the caller falls too far behind or the server shuts down.
func (t *trailService) Tail(ctx context.Context, req *connect.Request[trailv1.TailRequest], stream *connect.ServerStream[trailv1.TailResponse]) error {
	s := t.s
	fail := func(err error) error { return s.error(ctx, req.Spec().Procedure, err) }
	if s.tail == nil {
		return fail(trail.Errorf(trail.ENOTFOUND, "this server has no live tail"))
	}
	f, err := filter(ctx, req.Msg.GetFilter())
	if err != nil {
		return fail(err)
	}
	var after *trail.Cursor
	if c := req.Msg.GetCursor(); c != "" {
		if after, err = trail.ParseCursor(c); err != nil {
			return fail(err)
		}
	}
	st, err := s.tail.Follow(tail.Source{Reader: s.store, Head: s.ingester.Head}, f, after)
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	s.obs.AddTailSubscribers(1)
	defer s.obs.AddTailSubscribers(-1)
	// The headers tell the client that the tail has its start: whatever
	// is committed from here on is sent.
	if err := stream.Send(nil); err != nil {
		return err
	}
	for {
		entries, err := st.Next(ctx, tailWait)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err() // Canceled, or DeadlineExceeded at the call's deadline
		case err != nil:
			return fail(err)
		}
		for _, e := range entries {
			if err := stream.Send(&trailv1.TailResponse{Record: record(e)}); err != nil {
				return err // the client is gone
			}
		}
	}
}
