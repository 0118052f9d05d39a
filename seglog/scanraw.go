package seglog

import (
	"context"
	"sync"
)

// ScanRaw is Scan without parsing: fn gets each record's seq and bytes,
// valid until it returns. See trail.RawScanner.
//
// It serves the export that trail verify reads, a page at a time, so it
// walks the chunks of compressed segments itself: each chunk is read and
// decoded once, into buffers it reuses and not into the chunk cache that
// look-ups by id rely on, and each record is handed to fn from the
// decoded chunk, with no cursor and no copy. Frames never span chunks.
// Whatever this walk does not expect (a segment not yet compressed, a
// record not yet indexed, damage) goes to the cursor of scanFrames from
// that seq on, which skips damaged records as Scan does.
func (s *Store) ScanRaw(ctx context.Context, log string, from, to int64, fn func(seq int64, b []byte) error) error {
	to = min(to, s.size.Load())
	if log != s.log || from >= to {
		return nil
	}
	from = max(from, 0)
	bufs := scanBufs.Get().(*scanBuf)
	defer scanBufs.Put(bufs)
	for from < to {
		next, err := s.scanChunks(ctx, bufs, from, to, fn)
		if err != nil {
			return err
		}
		if next == from {
			break
		}
		from = next
	}
	if from >= to {
		return nil
	}
	return s.scanFrames(ctx, log, from, to, func(fr *frame) error { return fn(fr.seq, fr.bytes) })
}

// scanBuf holds what one ScanRaw reuses: a chunk as stored, decoded, and
// a frame.
type scanBuf struct {
	comp, raw []byte
	fr        frame
}

var scanBufs = sync.Pool{New: func() any { return new(scanBuf) }}

// scanChunks hands fn the records from seq from, up to to or the end of
// from's segment, if that segment is compressed. It returns the seq it
// stopped before: from itself when it read nothing, and the caller reads
// on another way.
func (s *Store) scanChunks(ctx context.Context, b *scanBuf, from, to int64, fn func(seq int64, b []byte) error) (int64, error) {
	segs := s.segments()
	g := segs[segmentFor(segs, from)]
	z := g.zfile()
	if z == nil {
		return from, nil
	}
	off := int64(0)
	if from > g.first {
		if from >= s.indexed.Load() {
			return from, nil
		}
		var err error
		if off, err = s.ix.offset(from); err != nil || off < 0 {
			return from, nil // not indexed, or damaged: the cursor says which
		}
	}
	seq := from
	for i := z.chunkAt(off); i >= 0 && i < len(z.chunks) && seq < to; i++ {
		var err error
		if b.comp, b.raw, err = z.decodeChunk(i, b.comp, b.raw); err != nil {
			return seq, nil
		}
		p := b.raw[off-z.chunks[i].uoff:]
		for len(p) > 0 && seq < to {
			if seq%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return seq, err
				}
			}
			if len(p) < frameHeader {
				return seq, nil
			}
			n, sum, err := header(p)
			if err != nil || len(p) < frameHeader+n || decodeInto(&b.fr, p[frameHeader:frameHeader+n], sum) != nil {
				return seq, nil
			}
			if b.fr.seal {
				return seq, nil // the next segment starts at seq: the caller's next turn
			}
			if b.fr.seq != seq {
				return seq, nil
			}
			if err := fn(seq, b.fr.bytes); err != nil {
				return seq, err
			}
			seq++
			p = p[frameHeader+n:]
		}
		if i+1 < len(z.chunks) {
			off = z.chunks[i+1].uoff
		}
	}
	return seq, nil
}
