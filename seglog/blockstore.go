package seglog

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Blocks are rows of the index's blocks table, written once, when full,
// zstd-compressed (z is always 1), in the same transaction as the id index
// rows and the watermark. The stored blocks cover [0, k*blockSize) for the largest k
// that fits under the watermark; the records past them are the block being
// filled, which Open refills from the log.

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

// blockZstd compresses the index's full blocks; zdecoder (codec.go),
// shared with zstd segments, decompresses them.
var blockZstd = newZstd(zstd.SpeedFastest)

// blockSet is the index's blocks in memory: every block's summary, and a
// few blocks' columns, decoded.
type blockSet struct {
	mu     sync.RWMutex
	blocks []*blockMeta // by first; the last may be partial

	cmu   sync.Mutex
	cache map[int64][]blockRow // stored blocks' columns, by first seq
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

// loadBlocks reads every stored block's summary. They must be full and
// end within a block of the watermark.
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
		if m.first != next || m.n != blockSize {
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
	if next > ix.watermark || ix.watermark-next >= blockSize {
		return fmt.Errorf("%w: the blocks end at seq %d, the watermark at %d", errBlock, next, ix.watermark)
	}
	ix.cur = newBlockBuilder(next)
	ix.blocks.blocks = ms
	return nil
}

// putBlock writes the full block b, compressed.
func (ix *index) putBlock(ctx context.Context, b *blockBuilder) (*blockMeta, error) {
	m := b.meta()
	ix.buf = encodeRows(ix.buf[:0], b.rows)
	cols, z := blockZstd.encode(nil, ix.buf), 1
	st, err := ix.stmt(ctx, "INSERT INTO blocks (first, n, tmin, tmax, z, cols, sum) VALUES (?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return nil, err
	}
	if _, err := st.ExecContext(ctx, m.first, m.n, m.tmin, m.tmax, z, cols, encodeSummary(m)); err != nil {
		return nil, err
	}
	return m, nil
}

// readRows reads the columns of the stored block at first, which is full.
func (ix *index) readRows(ctx context.Context, first int64) ([]blockRow, error) {
	var n int64
	var cols []byte
	if err := ix.r.QueryRowContext(ctx, "SELECT n, cols FROM blocks WHERE first = ?", first).Scan(&n, &cols); err != nil {
		return nil, fmt.Errorf("the block at seq %d: %w", first, err)
	}
	cols, err := zdecoder.DecodeAll(cols, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: the block at seq %d: %v", errBlock, first, err)
	}
	rows, err := decodeRows(cols, n)
	if err != nil {
		return nil, fmt.Errorf("the block at seq %d: %w", first, err)
	}
	return rows, nil
}

// rows returns the columns of the block m: the block being filled's from
// memory, a stored one's from the cache or the file. Stored blocks never
// change.
func (ix *index) rows(ctx context.Context, m *blockMeta) ([]blockRow, error) {
	if m.rows != nil {
		return m.rows[:m.n], nil
	}
	bs := &ix.blocks
	bs.cmu.Lock()
	rows := bs.cache[m.first]
	bs.cmu.Unlock()
	if rows != nil {
		return rows, nil
	}
	rows, err := ix.readRows(ctx, m.first)
	if err != nil {
		return nil, err
	}
	if int64(len(rows)) != m.n {
		return nil, fmt.Errorf("%w: the block at seq %d holds %d records, not %d", errBlock, m.first, len(rows), m.n)
	}
	bs.cmu.Lock()
	if bs.cache == nil || len(bs.cache) >= maxCachedBlocks {
		bs.cache = make(map[int64][]blockRow)
	}
	bs.cache[m.first] = rows
	bs.cmu.Unlock()
	return rows, nil
}
