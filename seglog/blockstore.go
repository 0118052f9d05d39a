package seglog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Blocks are rows of the index's blocks table. A full block's columns are
// zstd-compressed; the block being filled is rewritten at each indexer
// commit, uncompressed, in the same transaction as the id index rows and
// the watermark, so the blocks always cover exactly [0, watermark).

const blocksSchema = `
CREATE TABLE IF NOT EXISTS blocks (
	first INTEGER PRIMARY KEY,
	n     INTEGER NOT NULL,
	tmin  INTEGER NOT NULL,
	tmax  INTEGER NOT NULL,
	z     INTEGER NOT NULL,
	cols  BLOB NOT NULL,
	sum   BLOB NOT NULL
) STRICT;
`

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
)

// blockSet is the index's blocks in memory: every block's summary, and a
// few blocks' columns, decoded.
type blockSet struct {
	mu     sync.RWMutex
	blocks []*blockMeta // by first; the last may be partial

	cmu   sync.Mutex
	cache map[int64]*cachedRows
}

type cachedRows struct {
	n    int64
	rows []blockRow
}

// maxCachedBlocks bounds the decoded blocks kept: about 240 KB each.
const maxCachedBlocks = 32

// snapshot returns the blocks.
func (bs *blockSet) snapshot() []*blockMeta {
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	return bs.blocks
}

// publish replaces the blocks from first on with ms, once they are
// committed.
func (bs *blockSet) publish(ms []*blockMeta) {
	if len(ms) == 0 {
		return
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	keep := len(bs.blocks)
	if keep > 0 && bs.blocks[keep-1].first == ms[0].first {
		keep--
	}
	// A new slice, so that snapshots stay as they were.
	bs.blocks = append(bs.blocks[:keep:keep], ms...)
}

// loadBlocks reads every block's summary, and the columns of the block
// being filled into ix.cur. The blocks must cover [0, watermark) exactly.
func (ix *index) loadBlocks(ctx context.Context) error {
	rows, err := ix.wc.QueryContext(ctx, "SELECT first, n, tmin, tmax, sum FROM blocks ORDER BY first")
	if err != nil {
		return err
	}
	var ms []*blockMeta
	var next int64
	for rows.Next() {
		m := &blockMeta{}
		var sum []byte
		if err := rows.Scan(&m.first, &m.n, &m.tmin, &m.tmax, &sum); err != nil {
			rows.Close()
			return err
		}
		if m.first != next || m.n <= 0 || m.n > blockSize || len(ms) > 0 && ms[len(ms)-1].n != blockSize {
			rows.Close()
			return fmt.Errorf("%w: the block at seq %d of %d records does not follow seq %d", errBlock, m.first, m.n, next)
		}
		if err := decodeSummary(m, sum); err != nil {
			rows.Close()
			return err
		}
		ms, next = append(ms, m), m.first+m.n
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if next != ix.watermark {
		return fmt.Errorf("%w: the blocks end at seq %d, the watermark at %d", errBlock, next, ix.watermark)
	}
	ix.cur = newBlockBuilder(next)
	if len(ms) > 0 && ms[len(ms)-1].n < blockSize {
		last := ms[len(ms)-1]
		rs, err := ix.readRows(ctx, ix.wc.QueryRowContext, last.first, last.n)
		if err != nil {
			return err
		}
		ix.cur = newBlockBuilder(last.first)
		for _, r := range rs {
			ix.cur.add(r)
		}
	}
	ix.blocks.blocks = ms
	return nil
}

// putBlock writes the block b, compressed if it is full.
func (ix *index) putBlock(ctx context.Context, b *blockBuilder) (*blockMeta, error) {
	m := b.meta()
	cols := encodeRows(ix.buf[:0], b.rows)
	ix.buf = cols
	z := 0
	if b.full() {
		cols, z = zenc.EncodeAll(cols, nil), 1
	}
	st, err := ix.stmt(ctx, "INSERT OR REPLACE INTO blocks (first, n, tmin, tmax, z, cols, sum) VALUES (?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return nil, err
	}
	if _, err := st.ExecContext(ctx, m.first, m.n, m.tmin, m.tmax, z, cols, encodeSummary(m)); err != nil {
		return nil, err
	}
	return m, nil
}

// readRows reads the first n rows of the block at first, through q (the
// indexer's connection or the readers').
func (ix *index) readRows(ctx context.Context, q func(context.Context, string, ...any) *sql.Row, first, n int64) ([]blockRow, error) {
	var stored int64
	var z int
	var cols []byte
	if err := q(ctx, "SELECT n, z, cols FROM blocks WHERE first = ?", first).Scan(&stored, &z, &cols); err != nil {
		return nil, fmt.Errorf("the block at seq %d: %w", first, err)
	}
	if z == 1 {
		var err error
		if cols, err = zdec.DecodeAll(cols, nil); err != nil {
			return nil, fmt.Errorf("%w: the block at seq %d: %v", errBlock, first, err)
		}
	}
	rows, err := decodeRows(cols, stored)
	if err != nil {
		return nil, fmt.Errorf("the block at seq %d: %w", first, err)
	}
	if int64(len(rows)) < n {
		return nil, fmt.Errorf("%w: the block at seq %d holds %d records, not %d", errBlock, first, len(rows), n)
	}
	return rows[:n], nil
}

// rows returns the columns of the block m, from the cache or the file.
func (ix *index) rows(ctx context.Context, m *blockMeta) ([]blockRow, error) {
	bs := &ix.blocks
	bs.cmu.Lock()
	c := bs.cache[m.first]
	bs.cmu.Unlock()
	if c != nil && c.n >= m.n {
		return c.rows[:m.n], nil
	}
	rows, err := ix.readRows(ctx, ix.r.QueryRowContext, m.first, m.n)
	if err != nil {
		return nil, err
	}
	bs.cmu.Lock()
	if bs.cache == nil || len(bs.cache) >= maxCachedBlocks {
		bs.cache = make(map[int64]*cachedRows)
	}
	bs.cache[m.first] = &cachedRows{n: m.n, rows: rows}
	bs.cmu.Unlock()
	return rows, nil
}
