package enginebench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/storetest"
)

// BenchmarkSeglogReads fills a segment store with 300,000 records once,
// then reports: the time to open it clean, to open it after deleting its
// index (a full rebuild), and the latency of Get by id and of a filtered
// List page (tenant, action prefix, time range, limit 100); with sealed
// segments kept as written, and compressed (it waits for the compressor
// before it measures: Gets then read the sealed segments, all but the
// last 64 MiB, through their compressed copies).
func BenchmarkSeglogReads(b *testing.B) {
	for _, compressed := range []bool{false, true} {
		b.Run(fmt.Sprintf("compressed=%v", compressed), func(b *testing.B) { benchSeglogReads(b, compressed) })
	}
}

func benchSeglogReads(b *testing.B, compressed bool) {
	const n = 300000
	dir := b.TempDir()
	cfg := seglog.Config{Dir: dir, KeepUncompressed: !compressed}
	s, err := seglog.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	bl := storetest.NewBuilder(seglog.DefaultLog)
	bl.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	evs := events(1000)
	var ids []string
	for len(ids) < n {
		entries := bl.Entries(b, evs...)
		if err := s.Append(b.Context(), entries); err != nil {
			b.Fatal(err)
		}
		for _, e := range entries[:10] {
			ids = append(ids, e.ID)
		}
		ids = append(ids, make([]string, 990)...)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return id == "" })

	start := time.Now()
	s, err = seglog.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	openMS := time.Since(start).Milliseconds()
	s.Close()
	os.RemoveAll(filepath.Join(dir, "index"))
	start = time.Now()
	s, err = seglog.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rebuildMS := time.Since(start).Milliseconds()
	defer s.Close()
	if err := s.WaitCompressed(b.Context()); err != nil {
		b.Fatal(err)
	}

	var get, list []time.Duration
	f := &trail.Filter{Tenant: "tenant-7", Action: "account.", ActionPrefix: true, Limit: 100,
		Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 1, 1, 0, 0, 0, 500e6, time.UTC)}
	i := 0
	for b.Loop() {
		t := time.Now()
		if _, err := s.Get(b.Context(), ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		get = append(get, time.Since(t))
		t = time.Now()
		if _, err := s.List(b.Context(), f); err != nil {
			b.Fatal(err)
		}
		list = append(list, time.Since(t))
		i += 7
	}
	b.ReportMetric(float64(openMS), "open-ms")
	b.ReportMetric(float64(rebuildMS), "rebuild-ms")
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"get", get}, {"list", list}} {
		slices.Sort(m.d)
		b.ReportMetric(float64(m.d[len(m.d)/2].Microseconds()), m.name+"-p50-µs")
		b.ReportMetric(float64(m.d[len(m.d)*99/100].Microseconds()), m.name+"-p99-µs")
	}
}
