package trail_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
)

// benchEvent is a typical event: every metadata field and a small data
// object.
func benchEvent(i int) string {
	return fmt.Sprintf(`{"id":"evt-%06d","time":"2026-01-02T15:04:05.123Z","tenant":"acme","actor":{"id":"user-42","type":"user","name":"Ann Example","ip":"10.0.0.1"},"action":"account.suspended","target":{"id":"acct-9","type":"account"},"source":{"service":"billing","host":"billing-7","ip":"10.0.0.2"},"outcome":"success","request_id":"req-%d","data":{"reason":"chargeback","amount":{"value":1299,"currency":"EUR"},"tags":["fraud","manual"],"note":"card <4242> & co"}}`, i, i)
}

func BenchmarkParseEvent(b *testing.B) {
	in := []byte(benchEvent(1))
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := trail.ParseEvent(in, trail.DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseBatch(b *testing.B) {
	items := make([]string, 100)
	for i := range items {
		items[i] = benchEvent(i)
	}
	in := []byte("[" + strings.Join(items, ",") + "]")
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := trail.ParseBatch(in, trail.DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParsePrepare is the request path's per-event work before the
// writer: a batch of 1,000 events parsed, then each prepared (digest and
// record bytes), as POST /logs and the ingester do it.
func BenchmarkParsePrepare(b *testing.B) {
	items := make([]string, 1000)
	for i := range items {
		items[i] = benchEvent(i)
	}
	in := []byte("[" + strings.Join(items, ",") + "]")
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		events, err := trail.ParseBatch(in, trail.DefaultLimits)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range events {
			if _, err := trail.Prepare(e, now, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(items)), "µs/event")
}
