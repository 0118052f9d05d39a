package e2e_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/mod/sumdb/tlog"
)

// A ledger is the producers' side of the story: every event sent, and the
// receipt of every event a 2xx answer acknowledged.
type ledger struct {
	mu    sync.Mutex
	sent  map[string]*trail.Event
	acked map[string]ack
}

// An ack is the receipt of an acknowledged event, and when it came.
type ack struct {
	receipt trail.Receipt
	at      time.Time
}

func newLedger() *ledger {
	return &ledger{sent: map[string]*trail.Event{}, acked: map[string]ack{}}
}

// newEvent returns an event with a client-chosen id, unique content and
// the given action.
func newEvent(action string, worker, k int) *trail.Event {
	return &trail.Event{
		ID:     client.NewID(),
		Action: action,
		Actor:  trail.Actor{ID: fmt.Sprintf("worker-%d", worker), Type: "service"},
		Source: trail.Source{Service: "e2e"},
		Data:   json.RawMessage(fmt.Sprintf(`{"worker":%d,"k":%d}`, worker, k)),
	}
}

// send notes events as sent, before the first attempt.
func (l *ledger) send(events []*trail.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range events {
		l.sent[e.ID] = e
	}
}

// ack notes the receipts of a 2xx answer. A receipt that differs from an
// earlier one for the same id means the event was stored twice.
func (l *ledger) ack(t *testing.T, events []*trail.Event, receipts []trail.Receipt, at time.Time) {
	if len(receipts) != len(events) {
		t.Errorf("got %d receipts for %d events", len(receipts), len(events))
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, r := range receipts {
		if r.ID != events[i].ID {
			t.Errorf("receipt %d is for id %q, want %q", i, r.ID, events[i].ID)
			continue
		}
		if old, ok := l.acked[r.ID]; ok {
			if old.receipt.Log != r.Log || old.receipt.Seq != r.Seq || old.receipt.LeafHash != r.LeafHash {
				t.Errorf("id %s: got receipt %s/%d, want the earlier %s/%d (stored twice?)", r.ID, r.Log, r.Seq, old.receipt.Log, old.receipt.Seq)
			}
			continue
		}
		l.acked[r.ID] = ack{receipt: r, at: at}
	}
}

// counts returns how many events were sent and acknowledged, and the
// acknowledged ones by log.
func (l *ledger) counts() (sent, acked int, byLog map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byLog = map[string]int{}
	for _, a := range l.acked {
		byLog[a.receipt.Log]++
	}
	return len(l.sent), len(l.acked), byLog
}

// since returns how many events of log at seq >= from were acknowledged,
// and when the first of them was.
func (l *ledger) since(log string, from int64) (int, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, first := 0, time.Time{}
	for _, a := range l.acked {
		if a.receipt.Log == log && a.receipt.Seq >= from {
			n++
			if first.IsZero() || a.at.Before(first) {
				first = a.at
			}
		}
	}
	return n, first
}

// stored is one record as read back.
type stored struct {
	bytes []byte
	rec   trail.Record
}

// checkStored reads everything back through cl (a server or the NGINX in
// front of replicas) and checks the promises a producer relies on:
//
//   - every log's seqs are dense from 0 up to its committed size, and no
//     event id is stored twice (GET /export?to=end per log);
//   - every acknowledged event is stored where its receipt says, with bytes
//     that hash to the receipt's leaf hash and the content that was sent,
//     and GET /logs/{id} returns those bytes verbatim;
//   - GET /logs pages through every record of every log exactly once, in
//     (time, log, seq) order, both ways.
//
// It returns the logs' documents.
func checkStored(t *testing.T, cl *client.Client, db *mongo.Database, l *ledger) []logDoc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logs := readLogs(t, db)
	l.mu.Lock()
	defer l.mu.Unlock()

	// Every log, in full.
	byKey := map[string]*stored{} // "<log>/<seq>"
	byID := map[string]string{}   // id -> key
	for _, d := range logs {
		if p := d.Pending; p != nil {
			t.Logf("log %s has a pending batch at rest (first %d, n %d)", d.ID, p.First, p.N)
		}
		body, err := cl.Export(ctx, d.ID, 0, client.EndOfLog)
		if err != nil {
			t.Fatalf("export %s: %v", d.ID, err)
		}
		h, records, err := client.ReadExport(body)
		if err != nil {
			body.Close()
			t.Fatalf("export %s: %v", d.ID, err)
		}
		if h.Log != d.ID {
			t.Errorf("export of %s: header names log %q", d.ID, h.Log)
		}
		var n int64
		for b, err := range records {
			if err != nil {
				t.Fatalf("export %s: %v", d.ID, err)
			}
			var r trail.Record
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("export %s: record %d: %v", d.ID, n, err)
			}
			if r.Log != d.ID || r.Seq != n {
				t.Fatalf("export %s: record %d is %s/%d, want %s/%d: seqs are not dense", d.ID, n, r.Log, r.Seq, d.ID, n)
			}
			key := fmt.Sprintf("%s/%d", r.Log, r.Seq)
			if other, dup := byID[r.ID]; dup {
				t.Errorf("id %s is stored twice: at %s and %s", r.ID, other, key)
			}
			if _, ok := l.sent[r.ID]; !ok {
				t.Errorf("%s holds id %s, which no producer sent", key, r.ID)
			}
			byID[r.ID] = key
			byKey[key] = &stored{bytes: b, rec: r}
			n++
		}
		body.Close()
		if n != d.Committed {
			t.Errorf("log %s: export holds %d records, its committed size is %d", d.ID, n, d.Committed)
		}
	}

	// Every acknowledged event, where its receipt says.
	var acked []string
	for id, a := range l.acked {
		acked = append(acked, id)
		key := fmt.Sprintf("%s/%d", a.receipt.Log, a.receipt.Seq)
		s, ok := byKey[key]
		switch {
		case !ok:
			t.Errorf("acknowledged id %s (%s) is not stored", id, key)
		case s.rec.ID != id:
			t.Errorf("%s holds id %s, but id %s was acknowledged there", key, s.rec.ID, id)
		case tlog.RecordHash(s.bytes) != a.receipt.LeafHash:
			t.Errorf("%s: bytes hash to %v, the receipt's leaf hash is %v", key, tlog.RecordHash(s.bytes), a.receipt.LeafHash)
		default:
			e := l.sent[id]
			if s.rec.Action != e.Action || s.rec.Actor.ID != e.Actor.ID || !bytes.Equal(s.rec.Data, e.Data) {
				t.Errorf("%s: got action %q actor %q data %s, want %q %q %s", key, s.rec.Action, s.rec.Actor.ID, s.rec.Data, e.Action, e.Actor.ID, e.Data)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// GET /logs/{id} for every acknowledged event, a few at a time.
	got := time.Now()
	ids := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				b, leaf, err := cl.Get(ctx, id)
				want := byKey[byID[id]]
				mu.Lock()
				switch {
				case err != nil:
					bad = append(bad, fmt.Sprintf("GET /logs/%s: %v", id, err))
				case !bytes.Equal(b, want.bytes) || leaf != l.acked[id].receipt.LeafHash:
					bad = append(bad, fmt.Sprintf("GET /logs/%s: got %q (leaf %v), want %q", id, b, leaf, want.bytes))
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range acked {
		ids <- id
	}
	close(ids)
	wg.Wait()
	t.Logf("GET /logs/{id} of %d events in %v", len(acked), time.Since(got).Round(time.Millisecond))
	for i, s := range bad {
		if i == 10 {
			t.Errorf("... and %d more", len(bad)-i)
			break
		}
		t.Error(s)
	}

	// GET /logs, both ways, across every log.
	listed := time.Now()
	defer func() { t.Logf("GET /logs paged both ways in %v", time.Since(listed).Round(time.Millisecond)) }()
	asc := listAll(ctx, t, cl, "asc")
	desc := listAll(ctx, t, cl, "desc")
	if len(asc) != len(byKey) {
		t.Errorf("GET /logs (asc) visited %d records, the logs hold %d", len(asc), len(byKey))
	}
	seen := map[string]bool{}
	for i, b := range asc {
		var r trail.Record
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("GET /logs: record %d: %v", i, err)
		}
		key := fmt.Sprintf("%s/%d", r.Log, r.Seq)
		if seen[key] {
			t.Errorf("GET /logs visited %s twice", key)
		}
		seen[key] = true
		if s, ok := byKey[key]; !ok || !bytes.Equal(s.bytes, b) {
			t.Errorf("GET /logs: %s: got %q, want the exported %q", key, b, s.bytesOrNil())
		}
		if i > 0 {
			var p trail.Record
			json.Unmarshal(asc[i-1], &p)
			if cmpRecords(&p, &r) >= 0 {
				t.Errorf("GET /logs: %s/%d (time %v) comes after %s/%d (time %v): not in (time, log, seq) order", r.Log, r.Seq, r.Time, p.Log, p.Seq, p.Time)
			}
		}
	}
	slices.Reverse(desc)
	if len(desc) != len(asc) {
		t.Errorf("GET /logs?order=desc visited %d records, asc %d", len(desc), len(asc))
	} else {
		for i := range desc {
			if !bytes.Equal(desc[i], asc[i]) {
				t.Errorf("GET /logs?order=desc, reversed, differs from asc at %d: %q vs %q", i, desc[i], asc[i])
				break
			}
		}
	}
	return logs
}

func (s *stored) bytesOrNil() []byte {
	if s == nil {
		return nil
	}
	return s.bytes
}

// listAll pages through GET /logs in order, with a page size that does
// not divide the batches evenly.
func listAll(ctx context.Context, t *testing.T, cl *client.Client, order string) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	q := client.Query{Order: order, Limit: 487}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatalf("GET /logs?order=%s: more than 10000 pages; the cursor does not advance", order)
		}
		p, err := cl.List(ctx, q)
		if err != nil {
			t.Fatalf("GET /logs?order=%s (page %d): %v", order, pages, err)
		}
		out = append(out, p.Events...)
		if p.Next == "" {
			return out
		}
		q.Cursor = p.Next
	}
}

// cmpRecords orders records as GET /logs does: by time, log, seq.
func cmpRecords(a, b *trail.Record) int {
	return cmp.Or(cmp.Compare(a.Time.UnixNano(), b.Time.UnixNano()), strings.Compare(a.Log, b.Log), cmp.Compare(a.Seq, b.Seq))
}
