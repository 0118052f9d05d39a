package seglog

import (
	"bufio"
	"bytes"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sort"
	"sync"
)

// A compressed segment (.segz) holds the bytes of a sealed segment, cut
// into chunks of whole frames of about zChunk bytes, each compressed on
// its own (codec.go: S2 followed by the CRC-32C of the chunk's bytes; zstd
// frames with their checksums in files that end in the zstd magic), so
// that the frame at an offset of the uncompressed segment is read by
// decompressing one chunk.
// The seal frame is the last chunk, alone:
//
//	chunk 0 | chunk 1 | ... | table | footer
//	table   one entry a chunk: uoff uint64 | coff uint64 | clen uint32 | ulen uint32
//	footer  table offset uint64 | chunks uint32 | uncompressed size uint64 |
//	        crc uint32 (CRC-32C of the table and the footer before it) | the codec's magic
//
// Integers are little-endian. uoff is the chunk's offset in the segment,
// coff its offset in the file; both follow on from the chunk before.
const (
	zSuffix = ".segz"
	zTemp   = ".segz.tmp"
	zEntry  = 24
	zFooter = 32
)

// zChunk is the size a chunk grows to before it is compressed. A Get of a
// record in a compressed segment decompresses its chunk: 16 KiB took
// 26-30 µs (64 KiB: 46-87 µs), for a ratio of 0.26 rather than 0.25 on
// trail bench's records and 0.41 rather than 0.39 on random ones
// (BenchmarkCompressSegment).
var zChunk = 16 << 10

// zchunk is one entry of the table.
type zchunk struct {
	uoff, coff int64
	clen, ulen int64
}

// A zseg is an open compressed segment.
type zseg struct {
	path   string
	codec  codec
	f      *os.File
	size   int64 // of the segment, uncompressed
	chunks []zchunk
	cache  *chunkCache
}

// errStopped ends a compression that Close interrupts.
var errStopped = errors.New("the store is closing")

// compressFile writes the compressed copy of the sealed segment src to
// dst, a new file, and syncs it. It checks that each chunk decompresses
// to its bytes before it writes it.
func compressFile(src, dst string, c codec, stop <-chan struct{}) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	zw := &zwriter{w: bufio.NewWriterSize(out, 1<<20), codec: c}
	if err := zw.frames(bufio.NewReaderSize(in, 1<<20), src, stop); err != nil {
		return err
	}
	if err := zw.finish(); err != nil {
		return err
	}
	return syncFile(out)
}

// zwriter writes the chunks and table of a compressed segment.
type zwriter struct {
	w          *bufio.Writer
	codec      codec
	raw, comp  []byte
	check      []byte
	chunks     []zchunk
	uoff, coff int64
}

// frames reads the segment's frames from r and writes them in chunks. The
// seal gets a chunk of its own, so that damage to a chunk of records
// leaves the seal, which Open reads, intact.
func (zw *zwriter) frames(r io.Reader, src string, stop <-chan struct{}) error {
	var h [frameHeader]byte
	for {
		at := zw.uoff + int64(len(zw.raw))
		if _, err := io.ReadFull(r, h[:]); err == io.EOF {
			return zw.flush()
		} else if err != nil {
			return fmt.Errorf("segment %s, offset %d: %w", src, at, noEOF(err))
		}
		n, _, err := header(h[:])
		if err != nil {
			return fmt.Errorf("segment %s, offset %d: %w", src, at, err)
		}
		if n == sealPayload {
			if err := zw.flush(); err != nil {
				return err
			}
		}
		start := len(zw.raw) + frameHeader
		zw.raw = append(zw.raw, h[:]...)
		zw.raw = slices.Grow(zw.raw, n)[:start+n]
		if _, err := io.ReadFull(r, zw.raw[start:]); err != nil {
			return fmt.Errorf("segment %s, offset %d: %w", src, at, noEOF(err))
		}
		if len(zw.raw) >= zChunk {
			select {
			case <-stop:
				return errStopped
			default:
			}
			if err := zw.flush(); err != nil {
				return err
			}
		}
	}
}

// flush compresses and writes the chunk gathered.
func (zw *zwriter) flush() error {
	if len(zw.raw) == 0 {
		return nil
	}
	zw.comp = zw.codec.encode(zw.comp[:0], zw.raw)
	var err error
	zw.check, err = zw.codec.decode(zw.check[:0], zw.comp, int64(len(zw.raw)))
	if err != nil || !bytes.Equal(zw.check, zw.raw) {
		return fmt.Errorf("chunk %d does not decompress to its bytes (%v)", len(zw.chunks), err)
	}
	if _, err := zw.w.Write(zw.comp); err != nil {
		return err
	}
	c := zchunk{uoff: zw.uoff, coff: zw.coff, clen: int64(len(zw.comp)), ulen: int64(len(zw.raw))}
	zw.chunks = append(zw.chunks, c)
	zw.uoff += c.ulen
	zw.coff += c.clen
	zw.raw = zw.raw[:0]
	return nil
}

// finish writes the table and the footer.
func (zw *zwriter) finish() error {
	b := make([]byte, 0, len(zw.chunks)*zEntry+zFooter)
	for _, c := range zw.chunks {
		b = binary.LittleEndian.AppendUint64(b, uint64(c.uoff))
		b = binary.LittleEndian.AppendUint64(b, uint64(c.coff))
		b = binary.LittleEndian.AppendUint32(b, uint32(c.clen))
		b = binary.LittleEndian.AppendUint32(b, uint32(c.ulen))
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(zw.coff))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(zw.chunks)))
	b = binary.LittleEndian.AppendUint64(b, uint64(zw.uoff))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	b = append(b, zw.codec.magic()...)
	if _, err := zw.w.Write(b); err != nil {
		return err
	}
	return zw.w.Flush()
}

// openZseg opens the compressed segment at path and checks its table.
func openZseg(path string, cache *chunkCache) (*zseg, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	z := &zseg{path: path, f: f, cache: cache}
	if err := z.readTable(); err != nil {
		f.Close()
		return nil, fmt.Errorf("compressed segment %s: %w: it was truncated or edited; restore it from a backup", path, err)
	}
	return z, nil
}

func (z *zseg) readTable() error {
	fi, err := z.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < zFooter {
		return fmt.Errorf("%d bytes are too few for its footer", fi.Size())
	}
	ft := make([]byte, zFooter)
	if _, err := z.f.ReadAt(ft, fi.Size()-zFooter); err != nil {
		return err
	}
	tableOff := int64(binary.LittleEndian.Uint64(ft))
	n := int64(binary.LittleEndian.Uint32(ft[8:]))
	z.size = int64(binary.LittleEndian.Uint64(ft[12:]))
	if z.codec = codecOf(string(ft[24:])); z.codec == nil || tableOff < 0 || tableOff+n*zEntry+zFooter != fi.Size() {
		return errors.New("its footer is not one")
	}
	b := make([]byte, n*zEntry+zFooter)
	if _, err := z.f.ReadAt(b, tableOff); err != nil {
		return err
	}
	end := len(b) - zFooter + 20
	if got, want := crc32.Checksum(b[:end], castagnoli), binary.LittleEndian.Uint32(b[end:]); got != want {
		return fmt.Errorf("its table: %w (crc32c %08x, footer says %08x)", errChecksum, got, want)
	}
	z.chunks = make([]zchunk, n)
	var uoff, coff int64
	for i := range z.chunks {
		e := b[i*zEntry:]
		c := zchunk{uoff: int64(binary.LittleEndian.Uint64(e)), coff: int64(binary.LittleEndian.Uint64(e[8:])),
			clen: int64(binary.LittleEndian.Uint32(e[16:])), ulen: int64(binary.LittleEndian.Uint32(e[20:]))}
		if c.uoff != uoff || c.coff != coff || c.ulen == 0 || c.ulen > 2*maxFrameSize {
			return fmt.Errorf("its table: chunk %d is out of place", i)
		}
		z.chunks[i] = c
		uoff, coff = uoff+c.ulen, coff+c.clen
	}
	if uoff != z.size || coff != tableOff {
		return errors.New("its table does not add up to its footer")
	}
	return nil
}

// chunkError says that a chunk of a compressed segment is damaged: its
// frames are lost together.
type chunkError struct {
	path       string
	i          int
	start, end int64 // its offsets in the segment
	err        error
}

func (e *chunkError) Error() string {
	return fmt.Sprintf("compressed segment %s, chunk %d (offsets [%d, %d) of the segment): %v: %v", e.path, e.i, e.start, e.end, e.err, errChecksum)
}

func (e *chunkError) Unwrap() error { return errChecksum }

// ReadAt reads the segment's bytes at off, decompressing the chunks that
// hold them.
func (z *zseg) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		if off >= z.size {
			return n, io.EOF
		}
		i := z.chunkAt(off)
		if i < 0 {
			return n, fmt.Errorf("compressed segment %s: offset %d", z.path, off)
		}
		b, err := z.chunk(i)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], b[off-z.chunks[i].uoff:])
		n += c
		off += int64(c)
	}
	return n, nil
}

// readChunk reads up to len(p) bytes at off, from the chunk that holds
// off only.
func (z *zseg) readChunk(p []byte, off int64) (int, error) {
	i := z.chunkAt(off)
	if i < 0 {
		return 0, io.EOF
	}
	b, err := z.chunk(i)
	if err != nil {
		return 0, err
	}
	return copy(p, b[off-z.chunks[i].uoff:]), nil
}

// chunk returns chunk i's bytes, from the cache if it holds them. They
// must not be changed.
func (z *zseg) chunk(i int) ([]byte, error) {
	if b := z.cache.get(z, i); b != nil {
		return b, nil
	}
	_, b, err := z.decodeChunk(i, nil, nil) // the codec sizes the buffer once it has checked the size
	if err != nil {
		return nil, err
	}
	z.cache.put(z, i, b)
	return b, nil
}

// decodeChunk reads chunk i into comp and decodes it into dst, growing
// either as need be, and returns both.
func (z *zseg) decodeChunk(i int, comp, dst []byte) ([]byte, []byte, error) {
	c := z.chunks[i]
	comp = slices.Grow(comp[:0], int(c.clen))[:c.clen]
	if _, err := z.f.ReadAt(comp, c.coff); err != nil {
		return comp, dst, fmt.Errorf("compressed segment %s, chunk %d: %w", z.path, i, noEOF(err))
	}
	out, err := z.codec.decode(dst[:0], comp, c.ulen)
	if err != nil {
		return comp, dst, &chunkError{path: z.path, i: i, start: c.uoff, end: c.uoff + c.ulen, err: err}
	}
	return comp, out, nil
}

// chunkCache holds recently decompressed chunks, up to max bytes, so that
// a sequential read decompresses each chunk once.
type chunkCache struct {
	mu   sync.Mutex
	max  int
	size int
	m    map[chunkKey]*list.Element
	lru  list.List // of *chunkItem, the most recent first
}

type chunkKey struct {
	z *zseg
	i int
}

type chunkItem struct {
	key chunkKey
	b   []byte
}

// chunkCacheBytes bounds each store's cache of decompressed chunks.
const chunkCacheBytes = 8 << 20

func newChunkCache(max int) *chunkCache {
	return &chunkCache{max: max, m: make(map[chunkKey]*list.Element)}
}

func (c *chunkCache) get(z *zseg, i int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.m[chunkKey{z, i}]
	if el == nil {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*chunkItem).b
}

func (c *chunkCache) put(z *zseg, i int, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := chunkKey{z, i}
	if c.m[k] != nil {
		return
	}
	c.m[k] = c.lru.PushFront(&chunkItem{key: k, b: b})
	c.size += len(b)
	for c.size > c.max && c.lru.Len() > 1 {
		it := c.lru.Remove(c.lru.Back()).(*chunkItem)
		delete(c.m, it.key)
		c.size -= len(it.b)
	}
}

// frameAt returns the frame at offset off, read from the chunk that holds
// it into a buffer of the frame's own size, which the frame then owns,
// and the frame's size. ok is false if anything is amiss: the caller reads
// the frame the general way, which names the problem.
func (z *zseg) frameAt(off int64) (fr *frame, size int64, ok bool) {
	i := z.chunkAt(off)
	if i < 0 {
		return nil, 0, false
	}
	c, err := z.chunk(i)
	if err != nil {
		return nil, 0, false
	}
	rel := off - z.chunks[i].uoff
	if int64(len(c))-rel < frameHeader {
		return nil, 0, false
	}
	n, sum, err := header(c[rel:])
	if err != nil || int64(len(c))-rel-frameHeader < int64(n) {
		return nil, 0, false
	}
	p := bytes.Clone(c[rel+frameHeader : rel+frameHeader+int64(n)])
	if fr, err = decode(p, sum); err != nil {
		return nil, 0, false
	}
	fr.owned = true
	return fr, int64(frameHeader + n), true
}

// chunkAt returns the index of the chunk that holds offset off, or -1.
func (z *zseg) chunkAt(off int64) int {
	if off < 0 || off >= z.size {
		return -1
	}
	return sort.Search(len(z.chunks), func(i int) bool { return z.chunks[i].uoff > off }) - 1
}
