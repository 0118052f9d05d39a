package seglog

// SetBulkRebuild sets how many unindexed records make Open rebuild the
// secondary indexes after loading the rows, and returns the old value.
func SetBulkRebuild(n int64) int64 {
	old := bulkRebuild
	bulkRebuild = n
	return old
}
