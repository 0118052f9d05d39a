package ingest

import "time"

// An Observer is told what the ingester does, for metrics; package
// metrics implements it. Its methods are called on the write path, so
// they must be quick and must not block.
type Observer interface {
	// Committed reports one durable group commit of log: events new
	// records, stored in d, after which the log holds size records.
	Committed(log string, events int, size int64, d time.Duration)
	// StoreFailed reports a failed store call of operation op.
	StoreFailed(op string)
	// Checkpointed reports a signed checkpoint of log at size, stored at.
	Checkpointed(log string, size int64, at time.Time)
}

// nopObserver is the Observer of a Config without one.
type nopObserver struct{}

func (nopObserver) Committed(string, int, int64, time.Duration) {}
func (nopObserver) StoreFailed(string)                          {}
func (nopObserver) Checkpointed(string, int64, time.Time)       {}

// Queued returns how many events are admitted and not yet answered: the
// depth of the group-commit queue.
func (in *Ingester) Queued() int64 { return in.queued.Load() }
