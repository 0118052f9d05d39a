package seglog

// SetBulkRebuild sets how many unindexed records make Open rebuild the
// secondary indexes after loading the rows, and returns the old value.
func SetBulkRebuild(n int64) int64 {
	old := bulkRebuild
	bulkRebuild = n
	return old
}

// IDFilterReady reports whether lookups use the id filter, which is not
// the case while it is rebuilt from the index.
func (s *Store) IDFilterReady() bool { return s.idsReady.Load() }

// FilterFile is the id filter's file in the index directory.
const FilterFile = filterFile

// SetBlockSize sets how many records a block of List's index holds, and
// returns the old value. An index of blocks of another size is rebuilt.
func SetBlockSize(n int64) int64 {
	old := blockSize
	blockSize = n
	return old
}

// IDKey is the id index's order key of an id.
func IDKey(id string) int64 { return idKey(id) }

// Decompress returns the bytes of the segment that the compressed segment
// at path holds.
func Decompress(path string) ([]byte, error) {
	z, err := openZseg(path, newChunkCache(1))
	if err != nil {
		return nil, err
	}
	defer z.f.Close()
	b := make([]byte, z.size)
	_, err = z.ReadAt(b, 0)
	return b, err
}

// SetChunkBytes sets the size of the chunks segments are compressed in,
// and returns the old value.
func SetChunkBytes(n int) int {
	old := zChunk
	zChunk = n
	return old
}
