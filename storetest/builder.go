package storetest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// A Builder makes valid entries for one log, as the ingest layer does: it
// keeps every stored hash of the log in memory, so that each entry's Hashes
// are exactly what tlog.StoredHashes computes at its seq. A Builder is not
// safe for concurrent use.
type Builder struct {
	log    string
	size   int64
	hashes []tlog.Hash // every stored hash of the log, by tlog index

	// Now gives the receive time of the entries built; nil means time.Now.
	Now func() time.Time

	// NewID gives the ids of events without one; nil means NewID.
	NewID func() string
}

// NewBuilder returns a Builder for an empty log.
func NewBuilder(log string) *Builder {
	return &Builder{log: log}
}

// LoadBuilder returns a Builder that continues the log as s stores it: it
// reads the hashes of every stored entry with Scan.
func LoadBuilder(tb testing.TB, s trail.Store, log string) *Builder {
	tb.Helper()
	ctx := tb.Context()
	logs, err := s.Logs(ctx)
	if err != nil {
		tb.Fatalf("Logs: %v", err)
	}
	var size int64
	for _, h := range logs {
		if h.Log == log {
			size = h.Size
		}
	}
	b := NewBuilder(log)
	err = s.Scan(ctx, log, 0, size, func(e *trail.Entry) error {
		if e.Seq != b.size {
			return fmt.Errorf("got seq %d, want %d", e.Seq, b.size)
		}
		if want := tlog.StoredHashCount(e.Seq+1) - tlog.StoredHashCount(e.Seq); int64(len(e.Hashes)) != want {
			return fmt.Errorf("seq %d: got %d stored hashes, want %d", e.Seq, len(e.Hashes), want)
		}
		b.hashes = append(b.hashes, e.Hashes...)
		b.size++
		return nil
	})
	if err != nil {
		tb.Fatalf("LoadBuilder: scan %q: %v", log, err)
	}
	if b.size != size {
		tb.Fatalf("LoadBuilder: scan %q: got %d entries, want %d", log, b.size, size)
	}
	return b
}

// Log returns the name of the log b builds.
func (b *Builder) Log() string { return b.log }

// Size returns the seq of the next entry b builds.
func (b *Builder) Size() int64 { return b.size }

// Clone returns a copy of b that builds independently, for batches that are
// meant to be refused (a clone at an old size builds fenced entries).
func (b *Builder) Clone() *Builder {
	c := *b
	c.hashes = append([]tlog.Hash(nil), b.hashes...)
	return &c
}

// Reader returns a tlog.HashReader over the stored hashes of every entry b
// has built.
func (b *Builder) Reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 || x >= int64(len(b.hashes)) {
				return nil, fmt.Errorf("stored hash %d is beyond the log (%d hashes)", x, len(b.hashes))
			}
			out[i] = b.hashes[x]
		}
		return out, nil
	})
}

// Entries places the events at the next seqs of the log and returns their
// entries, with Hashes from tlog.StoredHashes. b advances past them whether
// or not they are ever appended.
func (b *Builder) Entries(tb testing.TB, events ...*trail.Event) []*trail.Entry {
	tb.Helper()
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	newID := NewID
	if b.NewID != nil {
		newID = b.NewID
	}
	out := make([]*trail.Entry, len(events))
	for i, ev := range events {
		p, err := trail.Prepare(ev, now(), newID)
		if err != nil {
			tb.Fatalf("Prepare: %v", err)
		}
		e := p.Entry(b.log, b.size)
		hs, err := tlog.StoredHashes(b.size, e.Bytes, b.Reader())
		if err != nil {
			tb.Fatalf("StoredHashes(%d): %v", b.size, err)
		}
		if hs[0] != e.Hashes[0] {
			tb.Fatalf("seq %d: leaf hash of Entry differs from tlog.StoredHashes", b.size)
		}
		e.Hashes = hs
		b.hashes = append(b.hashes, hs...)
		b.size++
		out[i] = e
	}
	return out
}

// Append builds entries for the events with b, appends them to s, and
// returns them. It fails tb if Append fails.
func Append(tb testing.TB, s trail.Store, b *Builder, events ...*trail.Event) []*trail.Entry {
	tb.Helper()
	entries := b.Entries(tb, events...)
	if err := s.Append(tb.Context(), entries); err != nil {
		tb.Fatalf("Append of %d entries at seq %d: %v", len(entries), entries[0].Seq, err)
	}
	return entries
}

// NewID returns a random id that is valid for trail.ValidateID.
func NewID() string { return rand.Text() }

// Event parses a JSON event with trail.ParseEvent and the default limits.
// It fails tb if the event is invalid.
func Event(tb testing.TB, js string) *trail.Event {
	tb.Helper()
	e, err := trail.ParseEvent([]byte(js), trail.DefaultLimits)
	if err != nil {
		tb.Fatalf("ParseEvent(%s): %v", js, err)
	}
	return e
}

// Events returns n simple valid events without ids.
func Events(n int) []*trail.Event {
	out := make([]*trail.Event, n)
	for i := range out {
		out[i] = &trail.Event{
			Actor:   trail.Actor{ID: fmt.Sprintf("user-%d", i%7), Type: "user"},
			Action:  "account.updated",
			Target:  &trail.Target{ID: fmt.Sprintf("acct-%d", i%13), Type: "account"},
			Source:  trail.Source{Service: "storetest"},
			Outcome: trail.OutcomeSuccess,
			Data:    json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
		}
	}
	return out
}
