package seglog

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/storetest"
)

// BenchmarkCompressSegment compresses a sealed segment of 8 MiB of
// records of about 700 bytes at both candidate levels, and reports the
// CPU per event (one goroutine: wall time is CPU time), the ratio of the
// compressed file to the segment, and the time to read one chunk back (a
// Get of a record not in the cache). Two kinds of records: "bench" pads
// data with 'x', as `trail bench` does; "random" fills it with random hex,
// a pessimistic stand-in for free-form data.
func BenchmarkCompressSegment(b *testing.B) {
	for _, kind := range []string{"bench", "random"} {
		seg, events := benchSegment(b, kind)
		for _, c := range []struct {
			name  string
			codec codec
		}{{"s2", s2Codec{}}, {"zstd-fastest", newZstd(zstd.SpeedFastest)}, {"zstd-default", newZstd(zstd.SpeedDefault)}} {
			b.Run(fmt.Sprintf("%s/%s", kind, c.name), func(b *testing.B) {
				dst := filepath.Join(b.TempDir(), "x.segz")
				for b.Loop() {
					os.Remove(dst)
					if err := compressFile(seg, dst, c.codec, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*events), "µs/event")
				raw, _ := os.Stat(seg)
				comp, _ := os.Stat(dst)
				b.ReportMetric(float64(comp.Size())/float64(raw.Size()), "ratio")
				z, err := openZseg(dst, newChunkCache(0))
				if err != nil {
					b.Fatal(err)
				}
				defer z.f.Close()
				start := time.Now()
				for i := range z.chunks {
					if _, err := z.chunk(i); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(time.Since(start).Microseconds())/float64(len(z.chunks)), "µs/chunk-read")
			})
		}
	}
}

// benchSegment writes a sealed segment of about 8 MiB of records of kind
// and returns its path and how many records it holds.
func benchSegment(b testing.TB, kind string) (string, int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	bl := storetest.NewBuilder(DefaultLog)
	var buf []byte
	n := 0
	for len(buf) < 8<<20 {
		evs := make([]*trail.Event, 100)
		for i := range evs {
			evs[i] = storetest.Event(b, benchEvent(rng, kind, n+i))
		}
		for _, e := range bl.Entries(b, evs...) {
			buf = appendFrame(buf, e)
		}
		n += len(evs)
	}
	buf = appendSeal(buf, int64(n))
	path := filepath.Join(b.TempDir(), segName(0))
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		b.Fatal(err)
	}
	return path, n
}

// benchEvent returns an event of about 600 bytes, which stored is about
// 700: the fields of `trail bench`'s events, and data of kind.
func benchEvent(rng *rand.Rand, kind string, n int) string {
	pad := strings.Repeat("x", 170)
	if kind == "random" {
		var hex []byte
		for len(hex) < len(pad) {
			hex = fmt.Appendf(hex, "%016x", rng.Uint64())
		}
		pad = string(hex[:len(pad)])
	}
	user := rng.IntN(10000)
	return fmt.Sprintf(`{"id":%q,"tenant":"t1","actor":{"id":"user-%d","type":"user","name":"Bench User %d","ip":"10.1.%d.%d"},"action":"bench.event",`+
		`"target":{"id":"acct-%d","type":"account"},"source":{"service":"trail-bench","host":"bench-host-1","ip":"10.0.0.2"},"outcome":"success",`+
		`"request_id":"req-%d","data":{"n":%d,"pad":%q}}`,
		storetest.NewID(), user, user, user/256%256, user%256, rng.IntN(100000), n, n, pad)
}
