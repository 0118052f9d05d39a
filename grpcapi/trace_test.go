package grpcapi_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/trail-audit/trail/gen/logger"
	trailv1 "github.com/trail-audit/trail/gen/trail/v1"
	"github.com/trail-audit/trail/internal/testserver"
	"google.golang.org/grpc/metadata"
)

// TestTraceparent: over real gRPC, an event of Append or CreateLog without
// a request_id takes the trace id of the call's traceparent metadata, as
// POST /logs does with the header; one with its own keeps it; a malformed
// traceparent sets nothing.
func TestTraceparent(t *testing.T) {
	const (
		tp      = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		traceID = `"request_id":"4bf92f3577b34da6a3ce929d0e0e4736"`
	)
	s := MustOpenServer(t, testserver.Config{})
	conn := MustDialGRPC(t, s)
	traced := metadata.AppendToOutgoingContext(t.Context(), "traceparent", tp)
	bad := metadata.AppendToOutgoingContext(t.Context(), "traceparent", "00-nothex-00f067aa0ba902b7-01")
	append := func(ctx context.Context, event string) {
		t.Helper()
		req := &trailv1.AppendRequest{Events: []*trailv1.EventInput{jsonInput(event)}}
		if _, err := invoke[trailv1.AppendResponse](ctx, conn, "/trail.v1.TrailService/Append", req); err != nil {
			t.Fatalf("Append(%s): %v", event, err)
		}
	}
	append(traced, `{"id":"traced","actor":{"id":"u"},"action":"a.b","source":{"service":"s"}}`)
	append(traced, `{"id":"own","actor":{"id":"u"},"action":"a.b","source":{"service":"s"},"request_id":"mine"}`)
	append(bad, `{"id":"malformed","actor":{"id":"u"},"action":"a.b","source":{"service":"s"}}`)
	resp, err := invoke[logger.CreateResponse](traced, conn, "/logger.LoggerService/CreateLog",
		&logger.CreateRequest{Logger: &logger.Logger{UserId: 7, EventType: "x.y", SrcService: "old"}})
	if err != nil {
		t.Fatalf("CreateLog: %v", err)
	}

	for _, c := range []struct {
		path string
		want string
		has  bool
	}{
		{"/logs/traced", traceID, true},
		{"/logs/own", `"request_id":"mine"`, true},
		{"/logs/own", traceID, false},
		{"/logs/malformed", `"request_id"`, false},
	} {
		if got := restGet(t, s, c.path, ""); bytes.Contains(got, []byte(c.want)) != c.has {
			t.Errorf("GET %s: got %s, want %s there: %v", c.path, got, c.want, c.has)
		}
	}
	page := restGet(t, s, "/logs?source=old", "")
	if resp.Id != 3 || !bytes.Contains(page, []byte(traceID)) {
		t.Errorf("CreateLog: got seq %d and %s, want seq 3 with %s", resp.Id, page, traceID)
	}
}
