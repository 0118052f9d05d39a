package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// A frame is one record in a segment:
//
//	length  uint32, little-endian: the payload's length
//	crc     uint32, little-endian: CRC-32C of the payload
//	payload seq (uint64) | digest (32 bytes) | n (1 byte) | n stored hashes | record bytes
//
// The last frame of a sealed segment is its seal, whose payload is
// sealMagic followed by the seq the next segment starts at (uint64). Its
// payload is shorter than any record's, which tells the two apart.
const (
	frameHeader  = 8
	sealPayload  = len(sealMagic) + 8
	sealFrame    = frameHeader + sealPayload
	minRecord    = 8 + len(trail.Digest{}) + 1 + tlog.HashSize
	maxFrameSize = 64 << 20
)

const sealMagic = "SEAL"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends e's frame to b.
func appendFrame(b []byte, e *trail.Entry) []byte {
	n := 8 + len(e.Digest) + 1 + len(e.Hashes)*tlog.HashSize + len(e.Bytes)
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Seq))
	b = append(b, e.Digest[:]...)
	b = append(b, byte(len(e.Hashes)))
	for _, h := range e.Hashes {
		b = append(b, h[:]...)
	}
	b = append(b, e.Bytes...)
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+frameHeader:], castagnoli))
	return b
}

// appendSeal appends the seal frame of a segment whose successor starts at
// next.
func appendSeal(b []byte, next int64) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(sealPayload))
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = append(b, sealMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(next))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+frameHeader:], castagnoli))
	return b
}

// errChecksum says that a frame's payload is not what was written.
var errChecksum = errors.New("checksum mismatch")

// header checks a frame header and returns the payload's length and
// checksum.
func header(h []byte) (n int, sum uint32, err error) {
	n = int(binary.LittleEndian.Uint32(h))
	if n != sealPayload && (n < minRecord || n > maxFrameSize) {
		return 0, 0, fmt.Errorf("frame length %d is impossible", n)
	}
	return n, binary.LittleEndian.Uint32(h[4:]), nil
}

// frame is a decoded frame. A seal has seal set and next, and nothing else.
type frame struct {
	seal   bool
	next   int64
	seq    int64
	digest trail.Digest
	hashes []tlog.Hash
	bytes  []byte
	owned  bool // bytes is the frame's alone, not a reader's buffer
}

// decode decodes a payload after checking it against its checksum. The
// frame's bytes alias p.
func decode(p []byte, sum uint32) (*frame, error) {
	f := &frame{}
	if err := decodeInto(f, p, sum); err != nil {
		return nil, err
	}
	return f, nil
}

// decodeInto is decode into f, whose hashes' array it reuses.
func decodeInto(f *frame, p []byte, sum uint32) error {
	if got := crc32.Checksum(p, castagnoli); got != sum {
		return fmt.Errorf("%w (crc32c %08x, header says %08x)", errChecksum, got, sum)
	}
	if len(p) == sealPayload {
		if string(p[:len(sealMagic)]) != sealMagic {
			return errors.New("a short frame that is not a seal")
		}
		*f = frame{seal: true, next: int64(binary.LittleEndian.Uint64(p[len(sealMagic):]))}
		return nil
	}
	*f = frame{seq: int64(binary.LittleEndian.Uint64(p)), hashes: f.hashes[:0]}
	p = p[8:]
	copy(f.digest[:], p)
	p = p[len(f.digest):]
	nh := int(p[0])
	p = p[1:]
	if nh == 0 || len(p) < nh*tlog.HashSize {
		return fmt.Errorf("frame of seq %d holds %d hashes in %d bytes", f.seq, nh, len(p))
	}
	f.hashes = slices.Grow(f.hashes, nh)[:nh]
	for i := range f.hashes {
		copy(f.hashes[i][:], p[i*tlog.HashSize:])
	}
	f.bytes = p[nh*tlog.HashSize:]
	if want := tlog.StoredHashCount(f.seq+1) - tlog.StoredHashCount(f.seq); int64(nh) != want {
		return fmt.Errorf("frame of seq %d holds %d stored hashes, want %d", f.seq, nh, want)
	}
	return nil
}

// entry parses the frame's record into an entry. The entry owns its
// bytes: the frame's, if the frame owns them, else a copy.
func (f *frame) entry() (*trail.Entry, error) {
	b := f.bytes
	if !f.owned {
		b = append([]byte(nil), b...)
	}
	e, err := trail.ParseEntry(b, f.digest, f.hashes)
	if err != nil {
		return nil, fmt.Errorf("seq %d: stored bytes: %w", f.seq, err)
	}
	if e.Seq != f.seq {
		return nil, fmt.Errorf("frame of seq %d holds the record of seq %d", f.seq, e.Seq)
	}
	return e, nil
}
