//go:build unix

package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchEvent is an event of about 600 bytes, as trail bench sends them:
// every metadata field and a data object with some padding.
func benchEvent(n int) string {
	return fmt.Sprintf(`{"time":"2026-01-02T15:04:05.123Z","tenant":"bench","actor":{"id":"user-%d","type":"user","name":"Ann Example","ip":"10.0.0.1"},"action":"account.suspended","target":{"id":"acct-%d","type":"account"},"source":{"service":"billing","host":"billing-7","ip":"10.0.0.2"},"outcome":"success","request_id":"req-%d","data":{"n":%d,"reason":"chargeback","amount":{"value":1299,"currency":"EUR"},"tags":["fraud","manual"],"pad":"%s"}}`,
		n%10000, n%100000, n, n, strings.Repeat("x", 220))
}

// BenchmarkPostRequest measures the request path of POST /logs through the
// whole stack (HTTP, parsing, preparing, group commit, SQLite with a synced
// commit, receipts), batched and single. cpu-µs/event is the CPU of the
// whole test process (server and its HTTP clients) per event: the
// synced commits make wall time a poor measure of the work.
func BenchmarkPostRequest(b *testing.B) {
	for _, sc := range []struct{ batch, clients int }{{1000, 4}, {1, 64}} {
		b.Run(fmt.Sprintf("batch=%d", sc.batch), func(b *testing.B) {
			ts := MustOpenServer(b, serverConfig{CheckpointInterval: time.Second})
			body := benchEvent(0)
			if sc.batch > 1 {
				items := make([]string, sc.batch)
				for i := range items {
					items[i] = benchEvent(i)
				}
				body = "[" + strings.Join(items, ",") + "]"
			}
			b.SetBytes(int64(len(body)))
			b.SetParallelism((sc.clients + 1) / 2) // per GOMAXPROCS, 2 here
			cpu0 := cpuTime(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := ts.send("POST", "/logs", body, "Content-Type", "application/json")
					if err != nil {
						b.Error(err)
						return
					}
					if r.status != http.StatusCreated {
						b.Errorf("got %d, want 201", r.status)
						return
					}
				}
			})
			b.StopTimer()
			events := float64(b.N * sc.batch)
			b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/events, "cpu-µs/event")
		})
	}
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
