package trail

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// A Reader reads what a Store holds. Its methods MUST NOT take a store's
// writer lock, claim, renew or release a log, or settle a batch in doubt:
// the HTTP API serves every read through a Reader, and a read must never
// stall behind a commit or change who writes which log.
type Reader interface {
	// Lookup returns the stored entries with the given ids; absent ids are
	// absent from the map. Entries carry Digest and Hashes.
	Lookup(ctx context.Context, ids []string) (map[string]*Entry, error)

	// Get returns the entry with the id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Entry, error)

	// List returns up to f.Limit entries that match f, in (time, log, seq)
	// order (descending if f.Desc), strictly after f.After if it is set.
	// Entries carry at least ID, Log, Seq, Time, Bytes and Hashes[0]. With
	// f.MaxBytes, it MUST stop after the entry that brings their Bytes to
	// f.MaxBytes, and SHOULD not read far beyond it.
	List(ctx context.Context, f *Filter) ([]*Entry, error)

	// Scan calls fn for the entries of log with from <= seq < to, in seq
	// order, stopping at the first error. It does not check density: a
	// missing seq is skipped, so that verification can name it.
	Scan(ctx context.Context, log string, from, to int64, fn func(*Entry) error) error

	// ReadHashes returns the stored hashes of log at the tlog indexes.
	ReadHashes(ctx context.Context, log string, indexes []int64) ([]tlog.Hash, error)

	// Checkpoint returns the stored checkpoint of log at size, or the
	// latest one if size < 0. It returns ErrNotFound if there is none.
	Checkpoint(ctx context.Context, log string, size int64) (note []byte, err error)

	// Logs returns every log the store holds, with its size.
	Logs(ctx context.Context) ([]Head, error)

	// Ping reports whether the store can be reached and written.
	Ping(ctx context.Context) error
}

// A Store persists records. It appends to exactly one log (its Head) and
// reads every log it holds. It has no method that changes or removes a
// record: stores are append-only, and their schema enforces it where it can.
//
// The conformance suite in package storetest states these rules as tests;
// every implementation runs it.
type Store interface {
	Reader

	// Head returns the log this store appends to and its size. After
	// ErrFenced it may name a different log. It belongs to the writer: it
	// may wait for a commit, settle a batch in doubt or claim a new log.
	Head(ctx context.Context) (Head, error)

	// Append stores entries atomically: all of them or none. Their seqs MUST
	// be dense and start at the current size of Head's log, and each MUST
	// carry its Hashes (tlog.StoredHashes). Append returns only after the
	// write is durable (synced to disk, or majority-acknowledged). It returns
	// ErrFenced if another writer holds one of those seqs, ErrDuplicateID
	// (wrapped, naming the id) if an id is already stored or repeated in the
	// batch, and ErrUnavailable (wrapped) if the store cannot be reached.
	// Its unique id is the last line of defence: a store reports a
	// duplicate and never decides whether it is a replay.
	Append(ctx context.Context, entries []*Entry) error

	// AddCheckpoint stores a signed checkpoint of log at size. Checkpoints
	// are append-only too.
	AddCheckpoint(ctx context.Context, log string, size int64, note []byte) error

	Close() error
}

// ReadHashes reads stored hashes for tlog indexes through getHashes, which
// returns the Hashes of the records at the given seqs (in any order, keyed by
// seq). Stores that keep each record's hashes beside it use it to implement
// Store.ReadHashes.
func ReadHashes(indexes []int64, getHashes func(seqs []int64) (map[int64][]tlog.Hash, error)) ([]tlog.Hash, error) {
	seqs := make([]int64, len(indexes))
	levels := make([]int, len(indexes))
	for i, x := range indexes {
		seqs[i], levels[i] = HashLocation(x)
	}
	m, err := getHashes(seqs)
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(indexes))
	for i := range indexes {
		hs, ok := m[seqs[i]]
		if !ok || levels[i] >= len(hs) {
			return nil, Errorf(EINTERNAL, "stored hash %d (seq %d, level %d) is missing", indexes[i], seqs[i], levels[i])
		}
		out[i] = hs[levels[i]]
	}
	return out, nil
}

// CheckAppend applies Append's rules on seqs, log and hashes for a store
// that holds one log of size records: entries MUST belong to log, start at
// size and be dense, and carry the stored hashes their seqs create. A first
// seq below size is ErrFenced. The embedded stores call it; errors name the
// entry, and the caller adds its own prefix.
func CheckAppend(log string, size int64, entries []*Entry) error {
	first := entries[0].Seq
	if first < size {
		return fmt.Errorf("append at seq %d: log %q already has %d records: %w", first, log, size, ErrFenced)
	}
	if first > size {
		return fmt.Errorf("append at seq %d: log %q has %d records; seqs must start at the size", first, log, size)
	}
	for i, e := range entries {
		if e.Log != log {
			return fmt.Errorf("append: entry %d is of log %q; this store holds log %q", i, e.Log, log)
		}
		if e.Seq != first+int64(i) {
			return fmt.Errorf("append: entry %d has seq %d, want %d; seqs must be dense", i, e.Seq, first+int64(i))
		}
		if want := tlog.StoredHashCount(e.Seq+1) - tlog.StoredHashCount(e.Seq); int64(len(e.Hashes)) != want {
			return fmt.Errorf("append: entry %d (seq %d) has %d stored hashes, want %d", i, e.Seq, len(e.Hashes), want)
		}
	}
	return nil
}

// A RawScanner is a Reader that can hand out records' stored bytes without
// parsing them, which is all an export needs. A store that parses records
// anyway need not implement it.
type RawScanner interface {
	// ScanRaw is Scan with only each record's seq and stored bytes; b is
	// valid until fn returns.
	ScanRaw(ctx context.Context, log string, from, to int64, fn func(seq int64, b []byte) error) error
}

// ScanRaw calls fn with the seq and stored bytes of log's records with
// from <= seq < to, in seq order, through r's ScanRaw if it has one and
// Scan if not.
func ScanRaw(ctx context.Context, r Reader, log string, from, to int64, fn func(seq int64, b []byte) error) error {
	if rs, ok := r.(RawScanner); ok {
		return rs.ScanRaw(ctx, log, from, to, fn)
	}
	return r.Scan(ctx, log, from, to, func(e *Entry) error { return fn(e.Seq, e.Bytes) })
}
