package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// A codec compresses the chunks of a compressed segment. Its magic ends
// the file, so that a reader knows how to decompress it: segments written
// with another codec still read.
type codec interface {
	magic() string
	// encode appends the compressed src to dst.
	encode(dst, src []byte) []byte
	// decode appends the decompressed src, which must be size bytes, to
	// dst.
	decode(dst, src []byte, size int64) ([]byte, error)
}

// s2Codec is the default: S2 (Snappy's format, klauspost/compress/s2)
// compressed trail bench's records 4.3 times as fast as zstd at its
// fastest level, for a ratio of 0.24 rather than 0.22; at 120k events/s the
// compressor had taken a sixth of the server's CPU with zstd. An S2 block
// has no checksum, and a flipped byte can decode to garbage of the right
// length whose frame headers no longer say where frames begin; so each
// chunk ends in the CRC-32C of its uncompressed bytes, checked before the
// chunk is used, which makes such damage a damaged chunk, whose records
// read as missing, like a zstd chunk's.
type s2Codec struct{}

func (s2Codec) magic() string { return "TRLSEGS2" }

func (s2Codec) encode(dst, src []byte) []byte {
	n := s2.MaxEncodedLen(len(src))
	dst = slices.Grow(dst, n+4)
	out := s2.Encode(dst[len(dst):len(dst)+n], src) // in place: it fits
	dst = dst[:len(dst)+len(out)]
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(src, castagnoli))
}

func (s2Codec) decode(dst, src []byte, size int64) ([]byte, error) {
	if len(src) < 4 {
		return nil, errors.New("it is too short for its checksum")
	}
	body, sum := src[:len(src)-4], binary.LittleEndian.Uint32(src[len(src)-4:])
	n, err := s2.DecodedLen(body)
	if err != nil {
		return nil, err
	}
	if int64(n) != size { // checked before the buffer is made
		return nil, fmt.Errorf("it holds %d bytes, the table says %d", n, size)
	}
	dst = slices.Grow(dst, n)
	out, err := s2.Decode(dst[len(dst):len(dst)+n], body) // in place: it fits
	if err != nil {
		return nil, err
	}
	if got := crc32.Checksum(out, castagnoli); got != sum {
		return nil, fmt.Errorf("%w (crc32c %08x, the chunk says %08x)", errChecksum, got, sum)
	}
	return dst[:len(dst)+len(out)], nil
}

// zstdCodec is zstd at a level, each chunk a zstd frame with its checksum:
// the format compressed segments were first written in.
type zstdCodec struct{ enc *zstd.Encoder }

func (zstdCodec) magic() string { return "TRLSEGZ1" }

func (c zstdCodec) encode(dst, src []byte) []byte { return c.enc.EncodeAll(src, dst) }

func (zstdCodec) decode(dst, src []byte, size int64) ([]byte, error) {
	b, err := zdecoder.DecodeAll(src, dst)
	if err == nil && int64(len(b)) != size {
		err = fmt.Errorf("it holds %d bytes, the table says %d", len(b), size)
	}
	return b, err
}

// codecOf returns the codec of a file's magic.
func codecOf(magic string) codec {
	switch magic {
	case s2Codec{}.magic():
		return s2Codec{}
	case zstdCodec{}.magic():
		return zstdCodec{}
	}
	return nil
}

// zdecoder decompresses zstd chunks; DecodeAll may be called concurrently.
// A chunk may hold a frame of maxFrameSize and the frames before it.
var zdecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(2*maxFrameSize))

// newZstd returns the zstd codec at level, for writing.
func newZstd(level zstd.EncoderLevel) zstdCodec {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
	return zstdCodec{enc: enc}
}
