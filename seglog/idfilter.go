package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"os"
	"slices"
	"sync"
)

// idFilter is a Bloom filter of the id hashes (idHash) of the log's
// records, so that asking whether an id is stored, which the writer does
// for every event with a client-chosen id, costs no index query when it is
// not. It has no false negatives: Append adds a batch's ids before the
// batch is visible, and so before the indexer can take it from the tail.
// A false positive costs one index query, which is exact.
//
// It grows in stages, each twice the capacity of the one before, since a
// Bloom filter cannot be resized without its keys; a lookup asks every
// stage, so the rate of false positives is at most the sum of theirs.
type idFilter struct {
	mu     sync.RWMutex
	stages []*bloom
}

// bloom is one stage: bloomBits bits per id of its capacity, bloomK probes
// (a false positive rate under 1% when full).
type bloom struct {
	words []uint64
	cap   int64
	n     int64
}

const (
	bloomBits = 10
	bloomK    = 7
	// minFilterCap is the capacity of a new filter's first stage at the
	// least: 1.25 MiB.
	minFilterCap = 1 << 20
)

// newIDFilter returns an empty filter whose first stage holds capacity ids.
func newIDFilter(capacity int64) *idFilter {
	return &idFilter{stages: []*bloom{newBloom(capacity)}}
}

func newBloom(capacity int64) *bloom {
	capacity = max(capacity, 64)
	return &bloom{words: make([]uint64, (capacity*bloomBits+63)/64), cap: capacity}
}

// probes returns the start and step of h's probes. FNV's bits are mixed
// first (splitmix64's finalizer), since they are not uniform enough alone.
func probes(h int64) (uint64, uint64) {
	return mix64(uint64(h)), mix64(uint64(h)^0x9e3779b97f4a7c15) | 1
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func (b *bloom) add(a, d uint64) {
	m := uint64(len(b.words)) * 64
	for range bloomK {
		bit, _ := bits.Mul64(a, m)
		b.words[bit>>6] |= 1 << (bit & 63)
		a += d
	}
	b.n++
}

func (b *bloom) has(a, d uint64) bool {
	m := uint64(len(b.words)) * 64
	for range bloomK {
		bit, _ := bits.Mul64(a, m)
		if b.words[bit>>6]&(1<<(bit&63)) == 0 {
			return false
		}
		a += d
	}
	return true
}

// add adds the id hashes hs.
func (f *idFilter) add(hs ...int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last := f.stages[len(f.stages)-1]
	for _, h := range hs {
		if last.n >= last.cap {
			last = newBloom(2 * last.cap)
			f.stages = append(f.stages, last)
		}
		last.add(probes(h))
	}
}

// mayHave reports whether an id of hash h may have been added; false means
// it has not.
func (f *idFilter) mayHave(h int64) bool {
	a, d := probes(h)
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, b := range f.stages {
		if b.has(a, d) {
			return true
		}
	}
	return false
}

// bytes returns the filter's size in memory.
func (f *idFilter) bytes() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var n int64
	for _, b := range f.stages {
		n += int64(len(b.words)) * 8
	}
	return n
}

// filterMagic begins a filter file, and names its format.
const filterMagic = "trailbf1"

// marshal encodes the filter, with mark, the watermark it covers: the
// magic, the mark, the stage count, each stage's capacity, count, word
// count and words, little-endian, and a CRC-32C of all that. The stages
// are copied under the lock, so that Append waits for a copy, not a write.
func (f *idFilter) marshal(mark int64) []byte {
	f.mu.RLock()
	stages := make([]bloom, len(f.stages))
	size := len(filterMagic) + 12 + 4
	for i, b := range f.stages {
		stages[i] = bloom{words: slices.Clone(b.words), cap: b.cap, n: b.n}
		size += 24 + 8*len(b.words)
	}
	f.mu.RUnlock()
	out := make([]byte, 0, size)
	out = append(out, filterMagic...)
	out = binary.LittleEndian.AppendUint64(out, uint64(mark))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(stages)))
	for _, b := range stages {
		out = binary.LittleEndian.AppendUint64(out, uint64(b.cap))
		out = binary.LittleEndian.AppendUint64(out, uint64(b.n))
		out = binary.LittleEndian.AppendUint64(out, uint64(len(b.words)))
		for _, w := range b.words {
			out = binary.LittleEndian.AppendUint64(out, w)
		}
	}
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// errBadFilter says that a filter file is not one marshal wrote, whole.
var errBadFilter = errors.New("the id filter file is damaged")

// unmarshalIDFilter decodes what marshal encoded, and its mark.
func unmarshalIDFilter(p []byte) (*idFilter, int64, error) {
	n := len(p) - 4
	if n < len(filterMagic)+12 || string(p[:len(filterMagic)]) != filterMagic {
		return nil, 0, errBadFilter
	}
	if crc32.Checksum(p[:n], castagnoli) != binary.LittleEndian.Uint32(p[n:]) {
		return nil, 0, errBadFilter
	}
	p = p[len(filterMagic):n]
	mark := int64(binary.LittleEndian.Uint64(p))
	count := binary.LittleEndian.Uint32(p[8:])
	p = p[12:]
	f := &idFilter{}
	for range count {
		if len(p) < 24 {
			return nil, 0, errBadFilter
		}
		b := &bloom{cap: int64(binary.LittleEndian.Uint64(p)), n: int64(binary.LittleEndian.Uint64(p[8:]))}
		nw := binary.LittleEndian.Uint64(p[16:])
		p = p[24:]
		if nw == 0 || nw > uint64(len(p))/8 || b.cap <= 0 || b.n < 0 {
			return nil, 0, errBadFilter
		}
		b.words = make([]uint64, nw)
		for i := range b.words {
			b.words[i] = binary.LittleEndian.Uint64(p[8*i:])
		}
		p = p[8*nw:]
		f.stages = append(f.stages, b)
	}
	if len(f.stages) == 0 || len(p) != 0 || mark < 0 {
		return nil, 0, errBadFilter
	}
	return f, mark, nil
}

// writeIDFilter writes f, covering the records below mark, to path, by a
// rename, unsynced: a file a crash damaged fails its checksum at open and
// is rebuilt.
func writeIDFilter(path string, f *idFilter, mark int64) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, f.marshal(mark), 0o600); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// readIDFilter reads the filter file at path and its mark.
func readIDFilter(path string) (*idFilter, int64, error) {
	p, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	f, mark, err := unmarshalIDFilter(p)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return f, mark, nil
}
