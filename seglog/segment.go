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
)

// segSuffix ends every segment file's name, which is the seq of its first
// record in 20 digits, so that names sort as seqs do.
const segSuffix = ".seg"

// A segment is one file of the log. Only the last one is ever written;
// readers open every segment read-only.
type segment struct {
	first int64
	path  string

	mu sync.Mutex
	r  *os.File // read-only, opened on first use
}

func segName(first int64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// file returns the segment's read-only handle.
func (g *segment) file() (*os.File, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.r == nil {
		f, err := os.Open(g.path)
		if err != nil {
			return nil, err
		}
		g.r = f
	}
	return g.r, nil
}

func (g *segment) close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.r == nil {
		return nil
	}
	err := g.r.Close()
	g.r = nil
	return err
}

// listSegments returns the segments of dir in seq order. It checks that
// they start at seq 0 and that every segment but the last is sealed and
// names its successor: a deleted, truncated or renamed segment is an error
// that names it.
func listSegments(dir string) ([]*segment, bool, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, false, err
	}
	var segs []*segment
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), segSuffix)
		if !ok {
			continue
		}
		first, err := strconv.ParseInt(name, 10, 64)
		if err != nil || first < 0 || segName(first) != de.Name() {
			return nil, false, fmt.Errorf("%s: not a segment name", filepath.Join(dir, de.Name()))
		}
		segs = append(segs, &segment{first: first, path: filepath.Join(dir, de.Name())})
	}
	slices.SortFunc(segs, func(a, b *segment) int { return int(a.first - b.first) })
	if len(segs) == 0 {
		return nil, false, nil
	}
	if segs[0].first != 0 {
		return nil, false, fmt.Errorf("the first segment, %s, starts at seq %d: the segments of seqs [0, %d) are missing", segs[0].path, segs[0].first, segs[0].first)
	}
	lastSealed := false
	for i, g := range segs {
		next, sealed, err := readSeal(g.path)
		if err != nil {
			return nil, false, err
		}
		last := i == len(segs)-1
		switch {
		case !sealed && !last:
			return nil, false, fmt.Errorf("segment %s is not sealed, yet segment %s follows it: it was truncated or edited", g.path, segs[i+1].path)
		case sealed && !last && next != segs[i+1].first:
			return nil, false, fmt.Errorf("segment %s is sealed with the next at seq %d, but the next segment is %s: the segments of seqs [%d, %d) are missing", g.path, next, segs[i+1].path, next, segs[i+1].first)
		case sealed && last:
			lastSealed = true
		}
	}
	return segs, lastSealed, nil
}

// readSeal reads the seal at the end of the segment at path, if it has one.
func readSeal(path string) (next int64, sealed bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < int64(sealFrame) {
		return 0, false, err
	}
	b := make([]byte, sealFrame)
	if _, err := f.ReadAt(b, fi.Size()-int64(sealFrame)); err != nil {
		return 0, false, fmt.Errorf("%s: %w", path, err)
	}
	if n, sum, herr := header(b); herr == nil && n == sealPayload && bytes.HasPrefix(b[frameHeader:], []byte(sealMagic)) {
		fr, err := decode(b[frameHeader:], sum)
		if err != nil {
			return 0, false, fmt.Errorf("segment %s: its seal: %w", path, err)
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
	f, err := g.file()
	if err != nil {
		return nil, 0, err
	}
	// One read usually gets the header and the whole frame: most records
	// are far smaller than frameGuess.
	b := make([]byte, frameGuess)
	got, err := f.ReadAt(b, off)
	if got < frameHeader {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, 0, fmt.Errorf("segment %s, offset %d: %w", g.path, off, err)
	}
	n, sum, err := header(b[:frameHeader])
	if err != nil {
		return nil, 0, fmt.Errorf("segment %s, offset %d: %w", g.path, off, err)
	}
	p := b[frameHeader:got]
	if len(p) >= n {
		p = p[:n]
	} else {
		p = make([]byte, n)
		if _, err := f.ReadAt(p, off+frameHeader); err != nil {
			return nil, 0, fmt.Errorf("segment %s, offset %d: %w", g.path, off, err)
		}
	}
	fr, err := decode(p, sum)
	if err != nil {
		return nil, 0, fmt.Errorf("segment %s, offset %d: %w", g.path, off, err)
	}
	return fr, int64(frameHeader + n), nil
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
