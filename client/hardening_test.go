package client_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/trail-audit/trail/client"
)

// etagless drops the ETag of every answer, as a misconfigured proxy might.
func etagless(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(dropETag{w}, r)
	})
}

type dropETag struct{ http.ResponseWriter }

func (w dropETag) WriteHeader(code int) {
	w.Header().Del("ETag")
	w.ResponseWriter.WriteHeader(code)
}

func (w dropETag) Write(b []byte) (int, error) {
	w.Header().Del("ETag")
	return w.ResponseWriter.Write(b)
}

// TestGetNeedsETag checks that Get fails closed: bytes it cannot check
// against a leaf hash are an error, not a record.
func TestGetNeedsETag(t *testing.T) {
	ctx := context.Background()
	s := MustOpenServer(t, etagless)
	c := client.New(s.URL, fast)
	rs, err := c.Push(ctx, newEvent("etag.checked"))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := c.Get(ctx, rs.Receipts[0].ID)
	if err == nil || !strings.Contains(err.Error(), "ETag") {
		t.Fatalf("got %d bytes and error %v, want an error about the missing ETag", len(b), err)
	}
}

// TestGetRefusesDotIDs checks that "." and ".." are refused before any
// request: /logs/.. would resolve to / and /logs/. to the list page.
func TestGetRefusesDotIDs(t *testing.T) {
	var requests atomic.Int32
	s := MustOpenServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			h.ServeHTTP(w, r)
		})
	})
	c := client.New(s.URL, fast)
	for _, id := range []string{".", ".."} {
		if b, _, err := c.Get(context.Background(), id); err == nil {
			t.Errorf("Get(%q): got %d bytes, want an error", id, len(b))
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("got %d requests, want 0", n)
	}
}
