package trail

import "context"

// Result is the outcome of one accepted ingest request.
type Result struct {
	Receipts []Receipt
	// Created is false when every event was a replay of stored content, so
	// that nothing new was written (HTTP 200 rather than 201).
	Created bool
}

// An Ingester is the write side of a node: it accepts events, answers once
// they are durable, and signs checkpoints of the log it writes.
// ingest.Ingester implements it; the HTTP API writes only through it and
// reads through a Reader.
type Ingester interface {
	// Submit stores events atomically (all or none) and returns their
	// receipts in order. Errors are *Error: EINVALID, ECONFLICT (an id is
	// stored with other content), EUNAVAILABLE (queue full, store down or
	// writes refused; retry later).
	Submit(ctx context.Context, events []*Event) (*Result, error)

	// Ready returns nil if the log can take writes now, else why not.
	Ready(ctx context.Context) error

	// Head returns the log this node writes and its committed size. It
	// MUST NOT touch the store, so that readers may call it freely.
	Head() Head

	// Checkpoint returns the latest signed note of log, or an error with
	// code ENOTFOUND if the log has none yet or signing is off.
	Checkpoint(ctx context.Context, log string) ([]byte, error)

	// Verifier returns the note verifier key, or "" if signing is off.
	Verifier() string
}
