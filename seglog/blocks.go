package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"

	"github.com/trail-audit/trail"
)

// List's index has no entry per record for the query fields. The records
// are cut, in seq order, into blocks of blockSize; a block holds the query
// columns of its records (time, frame offset, and the fields List filters
// on), and a summary: its time range and, per field, a Bloom filter of the
// values it holds. A query reads only the blocks whose summary may match,
// in the order of their time ranges, and stops as soon as no block left
// can hold a record before the last one it needs. This is VictoriaLogs'
// trade: a little read work for most of the write cost, on a log that is
// written far more than it is read. Only the id index stays one B-tree
// entry per record, since it must be exact.

// blockSize is how many records a block holds. Tests make it small.
var blockSize int64 = 4096

// The query fields, in column order.
const (
	fTenant = iota
	fActor
	fActorType
	fAction
	fTarget
	fTargetType
	fSource
	fOutcome
	nFields
)

// hashed marks the fields stored as a 64-bit hash of the string rather
// than a dictionary id: their values are many (a user, an account), and a
// dictionary entry for each would cost the B-tree insert that blocks
// avoid. A hash can collide, so List checks every record it reads against
// the filter.
var hashed = [nFields]bool{fActor: true, fTarget: true}

// fieldValues returns e's query fields, in column order.
func fieldValues(e *trail.Entry) [nFields]string {
	tg := e.TargetOrZero()
	return [nFields]string{e.Tenant, e.Actor.ID, e.Actor.Type, e.Action, tg.ID, tg.Type, e.Source.Service, e.Outcome}
}

// strHash is the column value of a hashed field.
func strHash(v string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(v))
	return h.Sum64()
}

// blockRow is one record's columns.
type blockRow struct {
	time int64
	off  int64
	f    [nFields]uint64 // dictionary ids, or strHash for hashed fields
}

// blockMeta is what List knows of a block without reading its columns.
// A published blockMeta is never changed: the indexer replaces it.
type blockMeta struct {
	first, n   int64
	tmin, tmax int64
	sum        [nFields]*bloom
	rows       []blockRow // the block being filled, which lives in memory only
}

// mayHold reports whether the block may hold a record whose field i is one
// of vs.
func (m *blockMeta) mayHold(i int, vs []uint64) bool {
	for _, v := range vs {
		if m.sum[i].has(probes(int64(v))) {
			return true
		}
	}
	return false
}

// blockBuilder is the block the indexer is filling. It is not stored:
// Open refills it from the log, since it holds fewer than blockSize
// records past the last full block. Its rows are only ever appended, so
// that List may read a prefix while the indexer adds more.
type blockBuilder struct {
	first      int64
	rows       []blockRow
	tmin, tmax int64
	sets       [nFields]map[uint64]struct{}
	sum        [nFields]*bloom // sized for a full block, filled as rows come
}

func newBlockBuilder(first int64) *blockBuilder {
	b := &blockBuilder{first: first}
	b.truncate(0)
	return b
}

func (b *blockBuilder) add(r blockRow) {
	b.rows = append(b.rows, r)
	b.tmin, b.tmax = min(b.tmin, r.time), max(b.tmax, r.time)
	for i, v := range r.f {
		if _, ok := b.sets[i][v]; !ok {
			b.sets[i][v] = struct{}{}
			b.sum[i].add(probes(int64(v)))
		}
	}
}

func (b *blockBuilder) full() bool { return int64(len(b.rows)) == blockSize }

// truncate drops the rows past n, which a rolled-back transaction added.
// The rows stay in their array, which List may be reading.
func (b *blockBuilder) truncate(n int) {
	rows := b.rows[:n]
	b.rows = make([]blockRow, 0, min(blockSize, 1<<16))
	b.tmin, b.tmax = math.MaxInt64, math.MinInt64
	for i := range b.sets {
		b.sets[i] = make(map[uint64]struct{})
		b.sum[i] = newBloom(blockSize)
	}
	for _, r := range rows {
		b.add(r)
	}
}

// partial returns the summary of the rows so far, for List, with its rows.
func (b *blockBuilder) partial() *blockMeta {
	m := &blockMeta{first: b.first, n: int64(len(b.rows)), tmin: b.tmin, tmax: b.tmax, rows: b.rows}
	for i, s := range b.sum {
		m.sum[i] = &bloom{words: slices.Clone(s.words)}
	}
	return m
}

// meta returns the summary of a full block, its filters sized for the
// values it holds.
func (b *blockBuilder) meta() *blockMeta {
	m := &blockMeta{first: b.first, n: int64(len(b.rows)), tmin: b.tmin, tmax: b.tmax}
	for i, set := range b.sets {
		m.sum[i] = newBloom(int64(len(set)))
		for v := range set {
			m.sum[i].add(probes(int64(v)))
		}
	}
	return m
}

// encodeRows appends the columns of rows to dst: per row, the time and the
// offset as varint deltas from the row before, the dictionary ids as
// uvarints, and the hashes as 8 bytes.
func encodeRows(dst []byte, rows []blockRow) []byte {
	var pt, po int64
	for _, r := range rows {
		dst = binary.AppendVarint(dst, r.time-pt)
		dst = binary.AppendVarint(dst, r.off-po)
		pt, po = r.time, r.off
		for i, v := range r.f {
			if hashed[i] {
				dst = binary.LittleEndian.AppendUint64(dst, v)
			} else {
				dst = binary.AppendUvarint(dst, v)
			}
		}
	}
	return dst
}

var errBlock = errors.New("a block of the index is damaged")

// decodeRows decodes n rows that encodeRows wrote.
func decodeRows(b []byte, n int64) ([]blockRow, error) {
	if n < 0 || n > blockSize {
		return nil, fmt.Errorf("%w: it claims %d records", errBlock, n)
	}
	rows := make([]blockRow, n)
	var pt, po int64
	for k := range rows {
		r := &rows[k]
		var c [2]int64
		for j := range c {
			d, w := binary.Varint(b)
			if w <= 0 {
				return nil, errBlock
			}
			c[j], b = d, b[w:]
		}
		pt, po = pt+c[0], po+c[1]
		r.time, r.off = pt, po
		for i := range r.f {
			if hashed[i] {
				if len(b) < 8 {
					return nil, errBlock
				}
				r.f[i], b = binary.LittleEndian.Uint64(b), b[8:]
				continue
			}
			v, w := binary.Uvarint(b)
			if w <= 0 {
				return nil, errBlock
			}
			r.f[i], b = v, b[w:]
		}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after its last record", errBlock, len(b))
	}
	return rows, nil
}

// encodeSummary writes the Bloom filters of m: per field, the count of
// words and the words.
func encodeSummary(m *blockMeta) []byte {
	var dst []byte
	for _, b := range m.sum {
		dst = binary.AppendUvarint(dst, uint64(len(b.words)))
		for _, w := range b.words {
			dst = binary.LittleEndian.AppendUint64(dst, w)
		}
	}
	return dst
}

// decodeSummary reads what encodeSummary wrote into m.
func decodeSummary(m *blockMeta, b []byte) error {
	for i := range m.sum {
		nw, w := binary.Uvarint(b)
		if w <= 0 || nw == 0 || nw > uint64(len(b)-w)/8 {
			return fmt.Errorf("%w: the summary of the block at seq %d", errBlock, m.first)
		}
		b = b[w:]
		words := make([]uint64, nw)
		for j := range words {
			words[j], b = binary.LittleEndian.Uint64(b), b[8:]
		}
		m.sum[i] = &bloom{words: words}
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: the summary of the block at seq %d", errBlock, m.first)
	}
	return nil
}
