package seglog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// segSuffix ends every segment file's name, which is the seq of its first
// record in 20 digits, so that names sort as seqs do.
const segSuffix = ".seg"

// A segment is one file of the log. Only the last one is ever written;
// readers open every segment read-only. Once sealed, a segment is
// compressed into a new file (segz.go), which then replaces it: reads go
// through ReadAt, which serves the segment's bytes from either.
type segment struct {
	first int64
	path  string // of the uncompressed file, whether it still exists or not

	mu sync.RWMutex
	r  *os.File // read-only, opened on first use
	z  *zseg    // once compressed

	zfailed atomic.Bool // its compression failed
}

func segName(first int64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// name returns the path of the segment's file, compressed or not.
func (g *segment) name() string {
	if z := g.zfile(); z != nil {
		return z.path
	}
	return g.path
}

// zfile returns the segment's compressed file, or nil while the segment
// is read from its uncompressed one.
func (g *segment) zfile() *zseg {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.z
}

// ReadAt reads the segment's (uncompressed) bytes at off.
func (g *segment) ReadAt(p []byte, off int64) (int, error) {
	g.mu.RLock()
	if g.r == nil && g.z == nil {
		g.mu.RUnlock()
		if err := g.open(); err != nil {
			return 0, err
		}
		g.mu.RLock()
	}
	defer g.mu.RUnlock()
	switch {
	case g.z != nil:
		return g.z.ReadAt(p, off)
	case g.r != nil:
		return g.r.ReadAt(p, off)
	}
	return 0, fmt.Errorf("segment %s: %w", g.path, os.ErrClosed)
}

func (g *segment) open() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.r != nil || g.z != nil {
		return nil
	}
	f, err := os.Open(g.path)
	if err != nil {
		return err
	}
	g.r = f
	return nil
}

// size returns the segment's length, uncompressed.
func (g *segment) size() (int64, error) {
	if z := g.zfile(); z != nil {
		return z.size, nil
	}
	fi, err := os.Stat(g.path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// swap makes reads of the segment go to z, its compressed copy, and
// closes the uncompressed file: readers hold mu while they read it.
func (g *segment) swap(z *zseg) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.z = z
	if g.r == nil {
		return nil
	}
	err := g.r.Close()
	g.r = nil
	return err
}

func (g *segment) close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	if g.r != nil {
		errs = append(errs, g.r.Close())
		g.r = nil
	}
	if g.z != nil {
		errs = append(errs, g.z.f.Close())
	}
	return errors.Join(errs...)
}

// listSegments returns the segments of dir in seq order. It checks that
// they start at seq 0 and that every segment but the last is sealed and
// names its successor: a deleted, truncated or renamed segment is an error
// that names it. Where a segment exists both compressed and not, the
// compression did not finish: the uncompressed file wins, and the other,
// like a temporary file of a compression, is removed.
func listSegments(dir string, cache *chunkCache) (_ []*segment, _ bool, err error) {
	segs, err := readSegments(dir, cache)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		if err != nil {
			closeAll(segs) // the compressed ones are open
		}
	}()
	if len(segs) == 0 {
		return nil, false, nil
	}
	if segs[0].first != 0 {
		return nil, false, fmt.Errorf("the first segment, %s, starts at seq %d: the segments of seqs [0, %d) are missing", segs[0].name(), segs[0].first, segs[0].first)
	}
	lastSealed := false
	for i, g := range segs {
		next, sealed, err := g.seal()
		if err != nil {
			return nil, false, err
		}
		last := i == len(segs)-1
		switch {
		case !sealed && !last:
			return nil, false, fmt.Errorf("segment %s is not sealed, yet segment %s follows it: it was truncated or edited", g.name(), segs[i+1].name())
		case sealed && !last && next != segs[i+1].first:
			return nil, false, fmt.Errorf("segment %s is sealed with the next at seq %d, but the next segment is %s: the segments of seqs [%d, %d) are missing", g.name(), next, segs[i+1].name(), next, segs[i+1].first)
		case sealed && last:
			lastSealed = true
		}
	}
	return segs, lastSealed, nil
}

// readSegments lists the segment files of dir, opens the compressed ones
// and removes what an unfinished compression left.
func readSegments(dir string, cache *chunkCache) ([]*segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	plain := make(map[int64]bool)
	var zs []int64
	var segs []*segment
	for _, de := range des {
		if strings.HasSuffix(de.Name(), zTemp) {
			if err := os.Remove(filepath.Join(dir, de.Name())); err != nil {
				return nil, err
			}
			continue
		}
		name, suffix := de.Name(), segSuffix
		if strings.HasSuffix(name, zSuffix) {
			suffix = zSuffix
		}
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		first, err := strconv.ParseInt(base, 10, 64)
		if err != nil || first < 0 || segName(first) != base+segSuffix {
			return nil, fmt.Errorf("%s: not a segment name", filepath.Join(dir, name))
		}
		if suffix == zSuffix {
			zs = append(zs, first)
			continue
		}
		plain[first] = true
		segs = append(segs, &segment{first: first, path: filepath.Join(dir, name)})
	}
	for _, first := range zs {
		path := filepath.Join(dir, segName(first))
		if plain[first] {
			if err := os.Remove(strings.TrimSuffix(path, segSuffix) + zSuffix); err != nil {
				return nil, err
			}
			continue
		}
		z, err := openZseg(strings.TrimSuffix(path, segSuffix)+zSuffix, cache)
		if err != nil {
			closeAll(segs)
			return nil, err
		}
		segs = append(segs, &segment{first: first, path: path, z: z})
	}
	slices.SortFunc(segs, func(a, b *segment) int { return int(a.first - b.first) })
	return segs, nil
}

func closeAll(segs []*segment) {
	for _, g := range segs {
		g.close()
	}
}

// seal reads the seal at the end of the segment, if it has one.
func (g *segment) seal() (next int64, sealed bool, err error) {
	size, err := g.size()
	if err != nil || size < int64(sealFrame) {
		return 0, false, err
	}
	b := make([]byte, sealFrame)
	if _, err := g.ReadAt(b, size-int64(sealFrame)); err != nil {
		return 0, false, fmt.Errorf("segment %s: %w", g.name(), err)
	}
	if n, sum, herr := header(b); herr == nil && n == sealPayload && bytes.HasPrefix(b[frameHeader:], []byte(sealMagic)) {
		fr, err := decode(b[frameHeader:], sum)
		if err != nil {
			return 0, false, fmt.Errorf("segment %s: its seal: %w", g.name(), err)
		}
		return fr.next, true, nil
	}
	return 0, false, nil
}

// recoverTail reads the active segment from its start, checks that its
// records have the seqs first, first+1, ..., and truncates a torn tail: a
// last frame that the file ends inside, or that fails its checksum with
// nothing but zeros after it (what a crash mid-write leaves). A bad frame
// with data after it is damage, not a crash, and an error. It returns the
// next seq and the segment's valid length.
func recoverTail(path string, first int64) (next, size int64, truncated bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, false, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	next = first
	var off int64
	var h [frameHeader]byte
	var p []byte
	for {
		_, err := io.ReadFull(br, h[:])
		if err == io.EOF {
			return next, off, false, nil
		}
		var n int
		var sum uint32
		if err == nil {
			n, sum, err = header(h[:])
		}
		if err == nil {
			p = slices.Grow(p[:0], n)[:n]
			_, err = io.ReadFull(br, p)
		}
		var fr *frame
		if err == nil {
			fr, err = decode(p, sum)
		}
		if err == nil && (fr.seal || fr.seq != next) {
			return 0, 0, false, fmt.Errorf("segment %s, offset %d: want the record of seq %d, found %s", path, off, next, describe(fr))
		}
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) && !zerosFollow(br) {
				return 0, 0, false, fmt.Errorf("segment %s, offset %d (seq %d): %v, and data follows: the segment is damaged, not torn by a crash; restore it from a backup", path, off, next, err)
			}
			if err := f.Truncate(off); err != nil {
				return 0, 0, false, fmt.Errorf("truncate the torn tail of %s at %d: %w", path, off, err)
			}
			return next, off, true, syncFile(f)
		}
		next++
		off += int64(frameHeader + n)
	}
}

func describe(fr *frame) string {
	if fr.seal {
		return "a seal"
	}
	return fmt.Sprintf("the record of seq %d", fr.seq)
}

// zerosFollow reports whether r holds only zero bytes to its end.
func zerosFollow(r io.Reader) bool {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return false
			}
		}
		if err != nil {
			return err == io.EOF
		}
	}
}

// frameGuess is how much readFrame reads at first.
const frameGuess = 4096

// readFrame reads the frame at off of the segment.
func (g *segment) readFrame(off int64) (*frame, int64, error) {
	if z := g.zfile(); z != nil {
		if fr, n, ok := z.frameAt(off); ok {
			return fr, n, nil
		}
		// Whatever went wrong, the read below names it as it always has.
	}
	// One read usually gets the header and the whole frame: most records
	// are far smaller than frameGuess.
	b := make([]byte, frameGuess)
	got, err := g.readSome(b, off)
	if got < frameHeader {
		if err == io.EOF || err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, 0, fmt.Errorf("segment %s, offset %d: %w", g.name(), off, err)
	}
	n, sum, err := header(b[:frameHeader])
	if err != nil {
		return nil, 0, fmt.Errorf("segment %s, offset %d: %w", g.name(), off, err)
	}
	p := b[frameHeader:got]
	if len(p) >= n {
		p = p[:n]
	} else {
		p = make([]byte, n)
		if _, err := g.ReadAt(p, off+frameHeader); err != nil {
			return nil, 0, fmt.Errorf("segment %s, offset %d: %w", g.name(), off, err)
		}
	}
	fr, err := decode(p, sum)
	if err != nil {
		return nil, 0, fmt.Errorf("segment %s, offset %d: %w", g.name(), off, err)
	}
	return fr, int64(frameHeader + n), nil
}

// readSome reads up to len(p) bytes at off, as ReadAt does, but from a
// compressed segment no further than the end of the chunk that holds off:
// a frame never spans chunks, and the next chunk need not be decompressed.
func (g *segment) readSome(p []byte, off int64) (int, error) {
	if z := g.zfile(); z != nil {
		return z.readChunk(p, off)
	}
	return g.ReadAt(p, off)
}

// createFile creates a new file, private to the owner, and syncs its
// directory so that the file survives a crash.
func createFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
