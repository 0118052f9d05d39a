package seglog_test

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/storetest"
)

// fill appends n events to a fresh store in dir, in batches of 7, with
// segments of 4 KiB, waits until the sealed ones are compressed, closes it
// and returns the entries.
func fill(t *testing.T, dir string, n int) []*trail.Entry {
	t.Helper()
	return fillWith(t, seglog.Config{Dir: dir, SegmentBytes: 4096}, n)
}

// fillWith is fill with another configuration.
func fillWith(t *testing.T, cfg seglog.Config, n int) []*trail.Entry {
	t.Helper()
	s, err := seglog.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := storetest.NewBuilder(seglog.DefaultLog)
	var all []*trail.Entry
	for len(all) < n {
		all = append(all, storetest.Append(t, s, b, storetest.Events(min(7, n-len(all)))...)...)
	}
	if err := s.WaitCompressed(t.Context()); err != nil {
		t.Fatalf("WaitCompressed: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return all
}

// reopen opens the store in dir again, with the same segment size.
func reopen(t *testing.T, dir string) *seglog.Store {
	t.Helper()
	return mustOpen(t, seglog.Config{Dir: dir, SegmentBytes: 4096})
}

// wantAll checks that s holds exactly all: Get, Lookup, Scan and List.
func wantAll(t *testing.T, s *seglog.Store, all []*trail.Entry) {
	t.Helper()
	ctx := t.Context()
	if h, _ := s.Head(ctx); h.Size != int64(len(all)) {
		t.Fatalf("Head: got size %d, want %d", h.Size, len(all))
	}
	for _, want := range all {
		got, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", want.ID, err)
		}
		if !bytes.Equal(got.Bytes, want.Bytes) || got.Digest != want.Digest || !slices.Equal(got.Hashes, want.Hashes) {
			t.Fatalf("Get(%s): got seq %d %s, want seq %d %s", want.ID, got.Seq, got.Bytes, want.Seq, want.Bytes)
		}
	}
	var n int
	err := s.Scan(ctx, seglog.DefaultLog, 0, int64(len(all)), func(e *trail.Entry) error {
		if !bytes.Equal(e.Bytes, all[n].Bytes) {
			t.Fatalf("Scan: seq %d: got %s, want %s", e.Seq, e.Bytes, all[n].Bytes)
		}
		n++
		return nil
	})
	if err != nil || n != len(all) {
		t.Fatalf("Scan: got %d records, %v; want %d", n, err, len(all))
	}
	got, err := s.List(ctx, &trail.Filter{Actor: "user-3"})
	if err != nil {
		t.Fatal(err)
	}
	var want int
	for _, e := range all {
		if e.Actor.ID == "user-3" {
			want++
		}
	}
	if len(got) != want {
		t.Fatalf("List actor user-3: got %d records, want %d", len(got), want)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	all := fill(t, dir, 200)
	segs, _ := filepath.Glob(filepath.Join(dir, "log", "*.segz"))
	if len(segs) < 10 {
		t.Fatalf("got %d compressed segments, want at least 10 of 4 KiB", len(segs))
	}
	s := reopen(t, dir)
	wantAll(t, s, all)
	b := storetest.LoadBuilder(t, s, seglog.DefaultLog)
	all = append(all, storetest.Append(t, s, b, storetest.Events(30)...)...)
	wantAll(t, s, all)
}

// TestRebuildIndex deletes the index: the next open rebuilds it from the
// segments, completely.
func TestRebuildIndex(t *testing.T) {
	dir := t.TempDir()
	all := fill(t, dir, 150)
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	s := reopen(t, dir)
	wantAll(t, s, all)
	db := openRaw(t, filepath.Join(dir, "index", "index.db"))
	var rows int
	if err := db.QueryRow("SELECT count(*) FROM records").Scan(&rows); err != nil || rows != len(all) {
		t.Fatalf("index rows after the rebuild: got %d, %v; want %d", rows, err, len(all))
	}
}

// TestBulkRebuild rebuilds a deleted index the way a large rebuild does:
// rows first, then the index entries.
func TestBulkRebuild(t *testing.T) {
	defer seglog.SetBulkRebuild(seglog.SetBulkRebuild(10))
	dir := t.TempDir()
	all := fill(t, dir, 80)
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	s := reopen(t, dir)
	wantAll(t, s, all)
	var n int
	db := openRaw(t, filepath.Join(dir, "index", "index.db"))
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name LIKE 'records_%'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("indexes after a bulk rebuild: got %d, %v; want 1", n, err)
	}
}

// TestCatchUp loses the index's last batches, as a crash before the
// indexer ran does: open re-indexes past the watermark.
func TestCatchUp(t *testing.T) {
	dir := t.TempDir()
	all := fill(t, dir, 100)
	db := openRaw(t, filepath.Join(dir, "index", "index.db"))
	mustExec(t, db, "DELETE FROM records WHERE seq >= 60", "UPDATE meta SET value = '60' WHERE key = 'watermark'")
	db.Close()
	wantAll(t, reopen(t, dir), all)
}

// TestIndexDisagrees edits the index so that it points an id at another
// record: reads name the problem rather than answer wrongly, and a rebuild
// fixes it.
func TestIndexDisagrees(t *testing.T) {
	// Blocks of five: seq 20 is in a stored block, which Open does not
	// read back (it refills only the block being filled, and a misplaced
	// record there makes it rebuild the index).
	defer seglog.SetBlockSize(seglog.SetBlockSize(5))
	dir := t.TempDir()
	all := fill(t, dir, 50)
	db := openRaw(t, filepath.Join(dir, "index", "index.db"))
	mustExec(t, db, "UPDATE records SET off = (SELECT off FROM records WHERE seq = 21) WHERE seq = 20")
	db.Close()
	s := reopen(t, dir)
	if _, err := s.Get(t.Context(), all[20].ID); err == nil || !strings.Contains(err.Error(), "the index disagrees with the log") {
		t.Fatalf("Get of a record the index misplaces: got %v, want an error that the index disagrees with the log", err)
	}
	s.Close()
	os.RemoveAll(filepath.Join(dir, "index"))
	wantAll(t, reopen(t, dir), all)
}

// TestTornTail appends what a crash mid-write leaves to the active segment:
// open truncates it and the log goes on.
func TestTornTail(t *testing.T) {
	for _, tt := range []struct {
		name string
		tail []byte
	}{
		{"half a header", []byte{0x40, 0, 0}},
		{"a frame cut short", append([]byte{200, 0, 0, 0, 1, 2, 3, 4}, make([]byte, 50)...)},
		{"zeros", make([]byte, 4096)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			all := fill(t, dir, 40)
			appendTo(t, activeSegment(t, dir), tt.tail)
			s := reopen(t, dir)
			wantAll(t, s, all)
			b := storetest.LoadBuilder(t, s, seglog.DefaultLog)
			all = append(all, storetest.Append(t, s, b, storetest.Events(3)...)...)
			wantAll(t, s, all)
		})
	}
}

// TestTamper damages uncompressed segments as an attacker or a failing
// disk would: open or a read names the damage, and the file (segs[named],
// the last if named is -1).
func TestTamper(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, segs []string)
		open   string // the error of Open, if it fails; else one record is damaged
		named  int
	}{
		{"edited byte in a sealed segment", func(t *testing.T, segs []string) { flipByte(t, segs[1], 100) }, "", 1},
		{"edited byte in the active segment", func(t *testing.T, segs []string) { flipByte(t, segs[len(segs)-1], 30) }, "damaged, not torn by a crash", -1},
		{"truncated sealed segment", func(t *testing.T, segs []string) { os.Truncate(segs[2], 1000) }, "is not sealed", 2},
		{"deleted segment", func(t *testing.T, segs []string) { os.Remove(segs[3]) }, "are missing", 2},
		{"deleted first segment", func(t *testing.T, segs []string) { os.Remove(segs[0]) }, "are missing", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := seglog.Config{Dir: t.TempDir(), SegmentBytes: 4096, KeepUncompressed: true}
			all := fillWith(t, cfg, 120)
			segs, _ := filepath.Glob(filepath.Join(cfg.Dir, "log", "*.seg"))
			named := segs[(tt.named+len(segs))%len(segs)]
			tt.damage(t, segs)
			wantDamage(t, cfg, all, tt.open, named)
		})
	}
}

// TestTamperCompressed damages compressed segments, of chunks smaller
// than a segment: an edited chunk loses its records, which Scan skips and
// Get names; a table that does not check, a truncated or deleted segment
// keep the store from opening.
func TestTamperCompressed(t *testing.T) {
	lastByte := func(path string) int64 {
		fi, _ := os.Stat(path)
		return fi.Size() - 40
	}
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, segs []string)
		open   string
		named  int
		chunk  int // bytes; 0 for the default, more than a segment
	}{
		{"edited byte in a chunk", func(t *testing.T, segs []string) { flipByte(t, segs[1], 100) }, "", 1, 1000},
		{"edited byte in the one chunk of records", func(t *testing.T, segs []string) { flipByte(t, segs[1], 100) }, "", 1, 0},
		{"edited byte in the table", func(t *testing.T, segs []string) { flipByte(t, segs[1], lastByte(segs[1])) }, "truncated or edited", 1, 1000},
		{"truncated", func(t *testing.T, segs []string) { os.Truncate(segs[2], 1000) }, "truncated or edited", 2, 1000},
		{"deleted", func(t *testing.T, segs []string) { os.Remove(segs[3]) }, "are missing", 2, 1000},
		{"deleted first", func(t *testing.T, segs []string) { os.Remove(segs[0]) }, "are missing", 1, 1000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.chunk > 0 {
				defer seglog.SetChunkBytes(seglog.SetChunkBytes(tt.chunk))
			}
			cfg := seglog.Config{Dir: t.TempDir(), SegmentBytes: 4096}
			all := fillWith(t, cfg, 120)
			segs, _ := filepath.Glob(filepath.Join(cfg.Dir, "log", "*.segz"))
			if len(segs) < 5 {
				t.Fatalf("got %d compressed segments, want at least 5", len(segs))
			}
			tt.damage(t, segs)
			wantDamage(t, cfg, all, tt.open, segs[tt.named])
		})
	}
}

// TestCompressCrash leaves what a crash during a compression leaves: Open
// keeps the uncompressed segment, drops the rest, and compresses it again.
func TestCompressCrash(t *testing.T) {
	for _, tt := range []struct {
		name  string
		leave func(t *testing.T, seg, segz string)
	}{
		{"both files", func(t *testing.T, seg, segz string) {}},
		{"both files, the compressed one torn", func(t *testing.T, seg, segz string) { os.Truncate(segz, 100) }},
		{"a temporary file", func(t *testing.T, seg, segz string) {
			os.Rename(segz, strings.TrimSuffix(segz, ".segz")+".segz.tmp")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			all := fill(t, dir, 100)
			segz, _ := filepath.Glob(filepath.Join(dir, "log", "*.segz"))
			b, err := seglog.Decompress(segz[2])
			if err != nil {
				t.Fatal(err)
			}
			seg := strings.TrimSuffix(segz[2], "z")
			if err := os.WriteFile(seg, b, 0o600); err != nil {
				t.Fatal(err)
			}
			tt.leave(t, seg, segz[2])
			s := reopen(t, dir)
			wantAll(t, s, all)
			if err := s.WaitCompressed(t.Context()); err != nil {
				t.Fatalf("WaitCompressed: %v", err)
			}
			left, _ := filepath.Glob(filepath.Join(dir, "log", "*.seg*"))
			if want := len(segz) + 1; len(left) != want || slices.Contains(left, seg) {
				t.Fatalf("segment files after the compression again: got %q, want %d: every sealed one compressed, the active one", left, want)
			}
			wantAll(t, s, all)
		})
	}
}

// wantDamage opens the damaged store in cfg.Dir: Open must fail with an
// error holding open, or if open is "", Scan must skip the damaged
// records, as if they were missing, so that verification names their
// seqs, and Get of one of them must name the damage and the file.
func wantDamage(t *testing.T, cfg seglog.Config, all []*trail.Entry, open, file string) {
	t.Helper()
	s, err := seglog.Open(cfg)
	if open != "" {
		if err == nil || !strings.Contains(err.Error(), open) || !strings.Contains(err.Error(), filepath.Base(file)) {
			t.Fatalf("Open: got %v, want an error with %q naming %s", err, open, filepath.Base(file))
		}
		return
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	next, missing := int64(0), int64(-1)
	err = s.Scan(t.Context(), seglog.DefaultLog, 0, int64(len(all)), func(e *trail.Entry) error {
		if e.Seq != next && missing < 0 {
			missing = next
		}
		next = e.Seq + 1
		return nil
	})
	if err != nil || missing < 0 {
		t.Fatalf("Scan: got %v, missing seq %d; want nil and a seq missing", err, missing)
	}
	_, err = s.Get(t.Context(), all[missing].ID)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), filepath.Base(file)) {
		t.Fatalf("Get of the damaged record: got %v, want a checksum mismatch naming %s", err, filepath.Base(file))
	}
}

// TestLegacyRefused opens a directory of the SQLite layout.
func TestLegacyRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, seglog.LegacyFile), nil, 0o600)
	if _, err := seglog.Open(seglog.Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), seglog.ErrLegacy.Error()) {
		t.Fatalf("Open of the SQLite layout: got %v, want %v", err, seglog.ErrLegacy)
	}
}

func activeSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	return segs[len(segs)-1]
}

func appendTo(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x20
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// openRaw opens an SQLite file of the store directly, as a tamperer would.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestCompressFailureLogged damages where a sealed segment's second frame
// says how long it is, so that its compression fails: the store opens
// (the damage is in the block being filled, which Open reads back), the
// segment stays as written, and the failure is logged with the segment's
// name, since nothing else would tell the operator.
func TestCompressFailureLogged(t *testing.T) {
	cfg := seglog.Config{Dir: t.TempDir(), SegmentBytes: 4096, KeepUncompressed: true}
	fillWith(t, cfg, 120)
	segs, _ := filepath.Glob(filepath.Join(cfg.Dir, "log", "*.seg"))
	// The second frame's length: the first frame's is its first 4 bytes
	// (little-endian), and 8 bytes of header come before its payload.
	b, err := os.ReadFile(segs[1])
	if err != nil {
		t.Fatal(err)
	}
	second := 8 + int64(binary.LittleEndian.Uint32(b))
	flipByte(t, segs[1], second+3)
	var logs bytes.Buffer
	cfg.KeepUncompressed = false
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := mustOpen(t, cfg)
	s.WaitCompressed(t.Context()) // the error of the last one only, which may be another's
	if _, err := os.Stat(segs[1]); err != nil {
		t.Fatalf("the damaged segment: %v; want it left as written", err)
	}
	if got := logs.String(); !strings.Contains(got, "could not be compressed") || !strings.Contains(got, filepath.Base(segs[1])) {
		t.Fatalf("log: got %q, want an error naming %s", got, filepath.Base(segs[1]))
	}
	if n := s.CompressFailures(); n != 1 {
		t.Fatalf("CompressFailures: got %d, want 1 (the damaged segment)", n)
	}
}

// TestEveryByteOfAChunk flips, one at a time, bytes of the chunks of
// records of a compressed segment: each flip leaves the store open, and
// Scan, which trail verify reads, reports records missing rather than
// failing. S2 blocks carry no checksum of their own; without the chunk's
// CRC, a flip that decodes to garbage of the right length lost where the
// frames begin.
func TestEveryByteOfAChunk(t *testing.T) {
	defer seglog.SetChunkBytes(seglog.SetChunkBytes(1000))
	cfg := seglog.Config{Dir: t.TempDir(), SegmentBytes: 4096}
	all := fillWith(t, cfg, 60)
	segs, _ := filepath.Glob(filepath.Join(cfg.Dir, "log", "*.segz"))
	orig, err := os.ReadFile(segs[1])
	if err != nil {
		t.Fatal(err)
	}
	// The chunks of records come first; the seal's chunk, the table and
	// the footer (damage there stops Open, as TestTamperCompressed
	// checks) take the last few hundred bytes.
	records := len(orig) - 400
	missing := 0
	// Every byte of the first chunk's start, where S2 keeps its lengths,
	// then bytes spread over the rest: an Open per flip is slow under
	// -race.
	var offs []int
	for off := 0; off < records; off++ {
		if off < 40 || off%23 == 0 {
			offs = append(offs, off)
		}
	}
	for _, off := range offs {
		b := bytes.Clone(orig)
		b[off] ^= 0x20
		if err := os.WriteFile(segs[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := seglog.Open(cfg)
		if err != nil {
			t.Fatalf("byte %d flipped: Open: %v", off, err)
		}
		n := 0
		err = s.Scan(t.Context(), seglog.DefaultLog, 0, int64(len(all)), func(*trail.Entry) error { n++; return nil })
		s.Close()
		if err != nil {
			t.Fatalf("byte %d flipped: Scan: %v; want the damaged records skipped", off, err)
		}
		if n < len(all) {
			missing++
		}
	}
	if missing == 0 {
		t.Fatalf("no flip made a record missing: the test damaged nothing")
	}
}

// TestRebuildPastDamage rebuilds the index of a log with a damaged record,
// as an upgrade that changes the index's version does: the store opens,
// Scan skips the record so that verification names its seq, and a List
// that reaches it says it is damaged, where the SQLite index of earlier
// builds had let such a log open too.
func TestRebuildPastDamage(t *testing.T) {
	for _, compressed := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "compressed"}[compressed], func(t *testing.T) {
			defer seglog.SetChunkBytes(seglog.SetChunkBytes(1000))
			cfg := seglog.Config{Dir: t.TempDir(), SegmentBytes: 4096, KeepUncompressed: !compressed}
			all := fillWith(t, cfg, 120)
			segs, _ := filepath.Glob(filepath.Join(cfg.Dir, "log", "*.seg*"))
			flipByte(t, segs[1], 100)
			if err := os.RemoveAll(filepath.Join(cfg.Dir, "index")); err != nil {
				t.Fatal(err)
			}
			s := mustOpen(t, cfg)
			var seqs []int64
			err := s.Scan(t.Context(), seglog.DefaultLog, 0, int64(len(all)), func(e *trail.Entry) error {
				seqs = append(seqs, e.Seq)
				return nil
			})
			if err != nil || len(seqs) == 0 || len(seqs) >= len(all) {
				t.Fatalf("Scan: got %d of %d records, %v; want the damaged ones skipped", len(seqs), len(all), err)
			}
			_, err = s.List(t.Context(), &trail.Filter{Limit: len(all)})
			if err == nil || !strings.Contains(err.Error(), "damaged in the log") {
				t.Fatalf("List over the damaged record: got %v, want an error that it is damaged", err)
			}
			got, err := s.List(t.Context(), &trail.Filter{Limit: len(all), Actor: all[0].Actor.ID})
			if err != nil || len(got) == 0 {
				t.Fatalf("List of one actor: got %d records, %v; want the undamaged ones", len(got), err)
			}
			if _, err := s.Get(t.Context(), all[len(all)-1].ID); err != nil {
				t.Fatalf("Get of an undamaged record: %v", err)
			}
		})
	}
}
