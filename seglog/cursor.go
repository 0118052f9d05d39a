package seglog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
)

// A cursor reads frames in seq order across segments, from a known
// position, through a buffer: the way Scan, verification and the index's
// catch-up read the log.
type cursor struct {
	s    *Store
	seg  int // index in segs
	segs []*segment
	off  int64
	next int64 // the seq the next record must have
	br   *bufio.Reader
	p    []byte

	// skipDamaged makes read pass over a frame that fails its checksum
	// but whose length leads to a good frame, as if its record were
	// missing: Scan's contract, so that verification names the seq.
	skipDamaged bool
}

// newCursor returns a cursor at the record seq, which lies at off of
// segment segs[seg].
func (s *Store) newCursor(seq int64, seg int, off int64) (*cursor, error) {
	c := &cursor{s: s, seg: seg, segs: s.segments(), off: off, next: seq}
	return c, c.open()
}

func (c *cursor) open() error {
	r := io.NewSectionReader(c.segs[c.seg], c.off, 1<<62)
	if c.br == nil {
		c.br = bufio.NewReaderSize(r, 1<<20)
	} else {
		c.br.Reset(r)
	}
	return nil
}

// skipChunk passes over a damaged chunk of a compressed segment, if err
// is one's and the cursor skips damage: its records are missing, as a
// damaged frame's is, and the cursor goes on after it.
func (c *cursor) skipChunk(err error) bool {
	var ce *chunkError
	if !c.skipDamaged || !errors.As(err, &ce) || ce.start != c.off {
		return false
	}
	g := c.segs[c.seg]
	size, serr := g.size()
	if serr != nil || ce.end < size {
		c.off = ce.end
		return serr == nil && c.open() == nil
	}
	// The seal was in the chunk: the next segment says where it starts.
	if c.seg+1 >= len(c.segs) {
		return false
	}
	c.seg++
	c.off = 0
	c.next = c.segs[c.seg].first
	return c.open() == nil
}

// read returns the next record's frame, at offset off of segment
// segs[seg]. It moves to the next segment at a seal, and checks that seqs
// follow each other, so that a missing or repeated record is an error that
// names where it is. The frame's bytes are valid until the next call.
func (c *cursor) read() (fr *frame, g *segment, off int64, err error) {
	for {
		g := c.segs[c.seg]
		var h [frameHeader]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			if c.skipChunk(err) {
				continue
			}
			return nil, nil, 0, fmt.Errorf("segment %s, offset %d, seq %d: %w", g.name(), c.off, c.next, noEOF(err))
		}
		n, sum, err := header(h[:])
		if err != nil {
			return nil, nil, 0, fmt.Errorf("segment %s, offset %d, seq %d: %w", g.name(), c.off, c.next, err)
		}
		c.p = slices.Grow(c.p[:0], n)[:n]
		if _, err := io.ReadFull(c.br, c.p); err != nil {
			return nil, nil, 0, fmt.Errorf("segment %s, offset %d, seq %d: %w", g.name(), c.off, c.next, noEOF(err))
		}
		fr, err := decode(c.p, sum)
		if err != nil && c.skipDamaged && n != sealPayload {
			c.off += int64(frameHeader + n)
			c.next++
			continue
		}
		if err != nil {
			return nil, nil, 0, fmt.Errorf("segment %s, offset %d, seq %d: %w", g.name(), c.off, c.next, err)
		}
		at := c.off
		c.off += int64(frameHeader + n)
		if fr.seal {
			if c.skipDamaged && fr.next > c.next {
				c.next = fr.next // the records of a damaged chunk before the seal
			}
			if c.seg+1 >= len(c.segs) || fr.next != c.next || c.segs[c.seg+1].first != c.next {
				return nil, nil, 0, fmt.Errorf("segment %s is sealed at seq %d, want %d, and the next segment must start there", g.name(), fr.next, c.next)
			}
			c.seg++
			c.off = 0
			if err := c.open(); err != nil {
				return nil, nil, 0, err
			}
			continue
		}
		if fr.seq != c.next && !(c.skipDamaged && fr.seq > c.next) {
			return nil, nil, 0, fmt.Errorf("segment %s, offset %d: found the record of seq %d, want %d", g.name(), at, fr.seq, c.next)
		}
		c.next = fr.seq
		c.next++
		return fr, g, at, nil
	}
}

// noEOF turns the end of a segment into an error: a cursor reads only
// records the log holds.
func noEOF(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("the segment ends early: %w", io.ErrUnexpectedEOF)
	}
	return err
}
