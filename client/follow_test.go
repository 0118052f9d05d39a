package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
)

// cutWriter aborts the connection once it has written cut records: a
// dropped connection in the middle of a stream.
type cutWriter struct {
	http.ResponseWriter
	cut, n int
}

func (w *cutWriter) Write(b []byte) (int, error) {
	w.n += bytes.Count(b, []byte("\ndata: ")) + bytes.Count(b[:min(len(b), 6)], []byte("data: "))
	if w.n > w.cut {
		panic(http.ErrAbortHandler)
	}
	return w.ResponseWriter.Write(b)
}

func (w *cutWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// TestFollow follows the log through a connection that the server side
// drops twice mid-stream: the Follower reconnects after the last id it
// saw and delivers every record once, in commit order, through
// Last-Event-ID and the server's catch-up.
func TestFollow(t *testing.T) {
	var streams atomic.Int64
	srv := MustOpenServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/logs/stream" && streams.Add(1) <= 2 {
				w = &cutWriter{ResponseWriter: w, cut: 3}
			}
			h.ServeHTTP(w, r)
		})
	})
	c := client.New(srv.URL, fast)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mustPush(t, c, newEvent("before.follow"))
	f, err := c.Follow(ctx, client.Query{Action: "test.*"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Position() == "" {
		t.Error("Position of a new stream on a log with records: got \"\", want where it began")
	}
	var want []string
	for i := range 10 {
		e := newEvent("test.follow")
		e.ID = fmt.Sprintf("f-%d", i)
		mustPush(t, c, e, newEvent("other.action"))
		want = append(want, e.ID)
	}
	for i, id := range want {
		ev, err := f.Next()
		if err != nil {
			t.Fatalf("Next %d: %v", i, err)
		}
		var r trail.Record
		if err := json.Unmarshal(ev.Record, &r); err != nil || r.ID != id {
			t.Fatalf("record %d: got %s (%v), want id %s", i, ev.Record, err, id)
		}
		if ev.ID != f.Position() {
			t.Errorf("record %d: Position: got %q, want its id %q", i, f.Position(), ev.ID)
		}
	}
	if n := streams.Load(); n != 3 {
		t.Errorf("connections: got %d, want 3 (two cut, one whole)", n)
	}
}

// TestFollowRefused: an error answered before the stream starts is
// returned by Follow, and a revoked key ends Next rather than retrying.
func TestFollowRefused(t *testing.T) {
	c := newClient(t)
	_, err := c.Follow(context.Background(), client.Query{Outcome: "maybe"})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
		t.Errorf("Follow with a bad filter: got %v, want a 400 *client.Error", err)
	}
	if _, err := c.Follow(context.Background(), client.Query{Order: "desc"}); trail.ErrorCode(err) != trail.EINVALID {
		t.Errorf("Follow in desc order: got %v, want %s", err, trail.EINVALID)
	}
}
