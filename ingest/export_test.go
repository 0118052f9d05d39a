package ingest

// SetNoTree turns off the Merkle hashing and signing so that a benchmark
// can measure their cost against the same run without them. Records then
// carry only their leaf hash; no real server runs this way.
func (in *Ingester) SetNoTree() { in.noTree = true }

// SetNoSignOnClose makes Close skip the final checkpoint, leaving the log
// as a crash would: records after the latest checkpoint.
func (in *Ingester) SetNoSignOnClose() { in.noFinalSign = true }

// Queued returns how many events are admitted and not yet answered.
func (in *Ingester) Queued() int64 { return in.queued.Load() }
