package seglog_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/storetest"
)

// rawRecord is one record as ScanRaw or Scan gives it.
type rawRecord struct {
	seq int64
	b   []byte
}

// scanAll reads [from, to) with Scan, the reference.
func scanAll(t *testing.T, s *seglog.Store, from, to int64) []rawRecord {
	t.Helper()
	var got []rawRecord
	if err := s.Scan(t.Context(), seglog.DefaultLog, from, to, func(e *trail.Entry) error {
		got = append(got, rawRecord{e.Seq, e.Bytes})
		return nil
	}); err != nil {
		t.Fatalf("Scan [%d, %d): %v", from, to, err)
	}
	return got
}

// scanRawPaged reads [from, to) with ScanRaw in pages of page records,
// each page a new call from the seq after the last, as the export does.
func scanRawPaged(t *testing.T, s *seglog.Store, from, to int64, page int) []rawRecord {
	t.Helper()
	errFull := errors.New("page full")
	var got []rawRecord
	for lo := from; lo < to; {
		next, n := to, 0
		err := s.ScanRaw(t.Context(), seglog.DefaultLog, lo, to, func(seq int64, b []byte) error {
			got = append(got, rawRecord{seq, bytes.Clone(b)})
			if n++; n == page {
				next = seq + 1
				return errFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errFull) {
			t.Fatalf("ScanRaw [%d, %d): %v", lo, to, err)
		}
		lo = next
	}
	return got
}

func sameRecords(t *testing.T, what string, got, want []rawRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].seq != want[i].seq || !bytes.Equal(got[i].b, want[i].b) {
			t.Fatalf("%s: record %d: got seq %d %q, want seq %d %q", what, i, got[i].seq, got[i].b, want[i].seq, want[i].b)
		}
	}
}

// TestScanRaw reads a log of compressed segments of small chunks, a
// segment not yet compressed and records not yet indexed, with ScanRaw
// in pages from many starting seqs, and then the same log with a damaged
// chunk: it gives what Scan gives, record for record.
func TestScanRaw(t *testing.T) {
	defer seglog.SetChunkBytes(seglog.SetChunkBytes(1000))
	cfg := seglog.Config{Dir: t.TempDir(), SegmentBytes: 4096}
	fillWith(t, cfg, 200)
	check := func(s *seglog.Store, size int64) {
		t.Helper()
		for _, from := range []int64{0, 1, 2, 5, 13, 37, 100, 150, 199, 200, size - 1} {
			for _, page := range []int{1, 7, 1000} {
				what := fmt.Sprintf("from %d, pages of %d", from, page)
				sameRecords(t, what, scanRawPaged(t, s, from, size+5, page), scanAll(t, s, from, size+5))
			}
		}
	}
	// Appended records stay in the tail, unindexed, for an hour.
	cfg.IndexInterval = time.Hour
	s := mustOpen(t, cfg)
	storetest.Append(t, s, storetest.LoadBuilder(t, s, seglog.DefaultLog), storetest.Events(30)...)
	check(s, 230)
	if n := len(scanAll(t, s, 0, 230)); n != 230 {
		t.Fatalf("Scan of an undamaged log: got %d records, want 230", n)
	}
	s.Close()

	segs, _ := filepath.Glob(filepath.Join(cfg.Dir, "log", "*.segz"))
	b, err := os.ReadFile(segs[2])
	if err != nil {
		t.Fatal(err)
	}
	b[300] ^= 0x20 // in the first chunk of records
	if err := os.WriteFile(segs[2], b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, cfg)
	if n := len(scanAll(t, s, 0, 230)); n == 230 {
		t.Fatal("the flipped byte damaged no record: the test checks nothing")
	}
	check(s, 230)
}
