package mongo

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	trail "github.com/trail-audit/trail"
	"github.com/trail-audit/trail/storetest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/mod/sumdb/tlog"
)

// TestReadsLeaveTheWriterAlone checks the trail.Reader contract on MongoDB,
// which the HTTP API relies on: every read method answers while another
// goroutine holds the writer mutex (as a slow commit does), and none changes
// a log document, where the lease, the committed size and a batch in doubt
// live.
func TestReadsLeaveTheWriterAlone(t *testing.T) {
	ctx := t.Context()
	// A lease of an hour is not renewed during the test, so that any change
	// to a log document is a read's doing.
	s := MustOpenStore(t, "", Config{LeaseTTL: time.Hour})
	h := mustHead(t, s)
	b := storetest.NewBuilder(h.Log)
	es := storetest.Append(t, s, b, storetest.Events(3)...)
	note := []byte(fmt.Sprintf("trail.test/%s\n3\nroot\n\n— sig\n", h.Log))
	if err := s.AddCheckpoint(ctx, h.Log, 3, note); err != nil {
		t.Fatalf("AddCheckpoint: %v", err)
	}
	ids := []string{es[0].ID, es[2].ID, "absent"}
	reads := map[string]func(context.Context, trail.Reader) error{
		"Lookup": func(ctx context.Context, r trail.Reader) error {
			m, err := r.Lookup(ctx, ids)
			if err == nil && len(m) != 2 {
				err = fmt.Errorf("got %d entries, want 2", len(m))
			}
			return err
		},
		"Get": func(ctx context.Context, r trail.Reader) error {
			_, err := r.Get(ctx, es[1].ID)
			return err
		},
		"List": func(ctx context.Context, r trail.Reader) error {
			got, err := r.List(ctx, &trail.Filter{Limit: 10})
			if err == nil && len(got) != 3 {
				err = fmt.Errorf("got %d entries, want 3", len(got))
			}
			return err
		},
		"Scan": func(ctx context.Context, r trail.Reader) error {
			n := 0
			err := r.Scan(ctx, h.Log, 0, 10, func(*trail.Entry) error { n++; return nil })
			if err == nil && n != 3 {
				err = fmt.Errorf("got %d entries, want 3", n)
			}
			return err
		},
		"ReadHashes": func(ctx context.Context, r trail.Reader) error {
			_, err := r.ReadHashes(ctx, h.Log, []int64{tlog.StoredHashIndex(0, 0), tlog.StoredHashIndex(1, 0)})
			return err
		},
		"Checkpoint": func(ctx context.Context, r trail.Reader) error {
			_, err := r.Checkpoint(ctx, h.Log, -1)
			return err
		},
		"Logs": func(ctx context.Context, r trail.Reader) error {
			logs, err := r.Logs(ctx)
			if err == nil && len(logs) != 1 {
				err = fmt.Errorf("got %d logs, want 1", len(logs))
			}
			return err
		},
		"Ping": func(ctx context.Context, r trail.Reader) error { return r.Ping(ctx) },
	}
	// A method added to Reader must be added here.
	rt := reflect.TypeFor[trail.Reader]()
	var methods []string
	for i := range rt.NumMethod() {
		methods = append(methods, rt.Method(i).Name)
	}
	if got := slices.Sorted(maps.Keys(reads)); !slices.Equal(got, methods) {
		t.Fatalf("methods tested: got %v, want every method of trail.Reader %v", got, methods)
	}

	before := mustLogDocs(t, s)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var r trail.Reader = s
	for _, name := range methods {
		done := make(chan error, 1)
		go func() { done <- reads[name](ctx, r) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s with the writer mutex held: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: got no answer in 10s with the writer mutex held, want one without waiting for it", name)
		}
	}
	if after := mustLogDocs(t, s); !reflect.DeepEqual(after, before) {
		t.Fatalf("log documents after the reads: got %v, want them unchanged: %v", after, before)
	}
}

// mustLogDocs returns every log document, in full.
func mustLogDocs(t *testing.T, s *Store) []bson.M {
	t.Helper()
	cur, err := s.logs.Find(t.Context(), bson.D{})
	if err != nil {
		t.Fatalf("find logs: %v", err)
	}
	var docs []bson.M
	if err := cur.All(t.Context(), &docs); err != nil {
		t.Fatalf("find logs: %v", err)
	}
	if len(docs) == 0 {
		t.Fatal("find logs: got none, want the claimed log's document")
	}
	return docs
}
