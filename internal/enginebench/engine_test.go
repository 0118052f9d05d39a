package enginebench

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/sqlite"
	"github.com/trail-audit/trail/storetest"
)

// events returns n events of about 600 bytes as stored, with every field
// the indexes hold.
func events(n int) []*trail.Event {
	out := make([]*trail.Event, n)
	for i := range out {
		tm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
		out[i] = &trail.Event{
			Time:      &tm,
			Tenant:    fmt.Sprintf("tenant-%d", i%50),
			Actor:     trail.Actor{ID: fmt.Sprintf("user-%d", i%5000), Type: "user", Name: "Some Body", IP: "10.1.2.3"},
			Action:    []string{"account.created", "account.suspended", "invoice.paid", "user.login"}[i%4],
			Target:    &trail.Target{ID: fmt.Sprintf("acct-%d", i%20000), Type: "account"},
			Source:    trail.Source{Service: "billing", Host: "billing-7f9c"},
			Outcome:   trail.OutcomeSuccess,
			RequestID: fmt.Sprintf("req-%016x", i),
			Data:      json.RawMessage(fmt.Sprintf(`{"plan":"pro","amount_cents":%d,"currency":"EUR","reason":"scheduled renewal","note":"%0200d"}`, i, i)),
		}
	}
	return out
}

// BenchmarkAppend measures durable appends of batches of 1000, 100 and 1
// events on each embedded store, each preceded by a Lookup of the batch's
// ids, as the ingester does for events with client-chosen ids (the SDK
// sets one on every event, for idempotent retries). cpu-µs/event counts every thread of the
// process during Append; for seglog, index-cpu-µs/event is the CPU its
// indexer then takes to index the same records, off the acknowledgement
// path (its interval is set long, so that it runs only at the end).
// seglog-indexed first appends and indexes prefilled records, so that the
// lookups of new ids meet an index of that size rather than an empty one.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1000, 100, 1} {
		for _, engine := range []string{"sqlite", "seglog", "seglog-indexed"} {
			b.Run(fmt.Sprintf("batch=%d/%s", batch, engine), func(b *testing.B) { benchAppend(b, engine, batch) })
		}
	}
}

func benchAppend(b *testing.B, engine string, batch int) {
	var s trail.Store
	var err error
	if engine == "sqlite" {
		s, err = sqlite.Open(sqlite.Config{Path: filepath.Join(b.TempDir(), "trail.db")})
	} else {
		s, err = seglog.Open(seglog.Config{Dir: b.TempDir(), IndexInterval: time.Hour})
	}
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	bl := storetest.NewBuilder(map[string]string{"sqlite": sqlite.DefaultLog}[engine])
	if engine != "sqlite" {
		bl = storetest.NewBuilder(seglog.DefaultLog)
	}
	bl.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	if engine == "seglog-indexed" {
		prefill(b, s.(*seglog.Store), bl)
	}
	evs := events(batch)
	var bytesPerEvent int
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		entries := bl.Entries(b, evs...)
		bytesPerEvent = len(entries[0].Bytes)
		ids := make([]string, len(entries))
		for i, e := range entries {
			ids[i] = e.ID
		}
		c := cpuTime()
		b.StartTimer()
		if m, err := s.Lookup(b.Context(), ids); err != nil || len(m) != 0 {
			b.Fatalf("Lookup of new ids: got %d found, error %v; want none", len(m), err)
		}
		if err := s.Append(b.Context(), entries); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime() - c
		b.StartTimer()
	}
	n := float64(b.N * batch)
	b.ReportMetric(n/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/event")
	b.ReportMetric(float64(bytesPerEvent), "B/event")
	if sl, ok := s.(*seglog.Store); ok {
		b.StopTimer()
		c := cpuTime()
		if err := sl.WaitIndexed(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64((cpuTime()-c).Microseconds())/n, "index-cpu-µs/event")
	}
}

// prefilled is how many records seglog-indexed appends and indexes before
// it measures.
const prefilled = 100000

// prefill appends and indexes prefilled records.
func prefill(b *testing.B, s *seglog.Store, bl *storetest.Builder) {
	b.Helper()
	evs := events(1000)
	for range prefilled / len(evs) {
		if err := s.Append(b.Context(), bl.Entries(b, evs...)); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.WaitIndexed(b.Context()); err != nil {
		b.Fatal(err)
	}
}

// cpuTime returns the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
