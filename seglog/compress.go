package seglog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// zCodec is the codec sealed segments are compressed with (codec.go): the
// compressor competes with ingest for the CPU, and disk is cheaper.
var zCodec codec = s2Codec{}

// compressLoop compresses sealed segments, one at a time, off the
// acknowledgement path: at open, those a crash or an older version left
// uncompressed, and then each one as it is sealed. Close interrupts it.
func (s *Store) compressLoop() {
	defer s.bg.Done()
	for {
		segs := s.segments()
		for _, g := range segs[:len(segs)-1] { // the last is active
			if g.zfile() != nil || g.zfailed.Load() {
				continue
			}
			err := s.compress(g, zCodec)
			if err == errStopped {
				return
			}
			s.zMu.Lock()
			s.zErr = err
			s.zMu.Unlock()
			if err != nil {
				// Left as it is, and read uncompressed; trail verify
				// names damage, and a restart tries again.
				if l := s.cfg.Logger; l != nil {
					l.Error("seglog: a sealed segment could not be compressed; it stays as written and is read as before, and the next start tries again. If the error names damage, run trail verify; if the disk is full, free space",
						"segment", g.path, "err", err)
				}
				s.zFailures.Add(1)
				g.zfailed.Store(true) // after the log line, which WaitCompressed's callers may read
			}
		}
		select {
		case <-s.stop:
			return
		case <-s.sealed:
		}
	}
}

// compress writes the compressed copy of the sealed segment g to a
// temporary file, syncs it, renames it into place and syncs the directory;
// only then do reads go to it, and is the uncompressed file removed. A
// crash at any step leaves one whole file of the segment at least, which
// Open sorts out (listSegments).
func (s *Store) compress(g *segment, c codec) error {
	base := strings.TrimSuffix(g.path, segSuffix)
	tmp, dst := base+zTemp, base+zSuffix
	os.Remove(tmp) // left by an attempt that failed
	if err := compressFile(g.path, tmp, c, s.stop); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compress segment %s: %w", g.path, err)
	}
	dir := filepath.Dir(g.path)
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("compress segment %s: %w", g.path, err)
	}
	z, err := openZseg(dst, s.chunks)
	if err != nil {
		os.Remove(dst)
		return err
	}
	if err := g.swap(z); err != nil {
		return fmt.Errorf("compress segment %s: %w", g.path, err)
	}
	if err := os.Remove(g.path); err != nil {
		return fmt.Errorf("compress segment %s: %w", g.path, err)
	}
	return syncDir(dir)
}

// CompressFailures returns how many compressions of a sealed segment have
// failed since Open: each such segment stays as written, and is read as
// before. /metrics exposes it as trail_segment_compress_failures_total.
func (s *Store) CompressFailures() uint64 { return s.zFailures.Load() }

// compressErr returns the error of the last compression of a sealed
// segment, if it failed; the segment stays uncompressed.
func (s *Store) compressErr() error {
	s.zMu.Lock()
	defer s.zMu.Unlock()
	return s.zErr
}

// WaitCompressed waits until every sealed segment is compressed, or its
// compression failed.
func (s *Store) WaitCompressed(ctx context.Context) error {
	for !s.cfg.KeepUncompressed {
		segs := s.segments()
		done := true
		for _, g := range segs[:len(segs)-1] {
			if g.zfile() == nil && !g.zfailed.Load() {
				done = false
			}
		}
		if done {
			return s.compressErr()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
