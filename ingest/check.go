package ingest

import (
	"context"
	"fmt"
	"slices"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
)

// checkLog verifies that the log h still matches note, its latest signed
// checkpoint (nil if it has none): the stored tree of the checkpoint's size
// must have the signed root, and every record after it must re-hash to the
// hashes stored beside it. It returns the audit, whose Root(h.Size) is the
// checked root. The re-hashing is merkle.Audit's, as in `trail verify`;
// only the covered prefix is taken on the checkpoint's word, which is what
// lets start-up read just the unsigned tail.
func checkLog(ctx context.Context, store trail.Store, h trail.Head, note []byte, vkey, origin string) (*merkle.Audit, error) {
	hashes := merkle.Reader(ctx, store, h.Log)
	if note == nil {
		a, err := merkle.ResumeAudit(h.Log, 0, hashes)
		if err != nil {
			return nil, err
		}
		return a, checkTail(ctx, store, a, h.Size)
	}
	cp, err := merkle.Open(note, vkey)
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint does not verify with this server's key: %w", err)
	}
	if cp.Origin != origin {
		return nil, fmt.Errorf("latest checkpoint is for origin %q, want %q", cp.Origin, origin)
	}
	if cp.Size > h.Size {
		return nil, fmt.Errorf("the store holds %d records but the signed checkpoint covers %d: records were removed", h.Size, cp.Size)
	}
	a, err := merkle.ResumeAudit(h.Log, cp.Size, hashes)
	if err != nil {
		return nil, fmt.Errorf("tree hash at size %d: %w", cp.Size, err)
	}
	if cp.Size > 0 {
		root, err := a.Root(cp.Size)
		if err != nil {
			return nil, fmt.Errorf("tree hash at size %d: %w", cp.Size, err)
		}
		if root != cp.Hash {
			return nil, fmt.Errorf("the stored tree of size %d has root %v but the signed checkpoint says %v: stored hashes were changed", cp.Size, root, cp.Hash)
		}
	}
	return a, checkTail(ctx, store, a, h.Size)
}

// checkTail re-hashes the records of a's log from a.Size() up to size and
// compares what they make with the hashes stored beside them.
func checkTail(ctx context.Context, store trail.Store, a *merkle.Audit, size int64) error {
	err := store.Scan(ctx, a.Log, a.Size(), size, func(e *trail.Entry) error {
		if e.Seq != a.Size() {
			return fmt.Errorf("seq %d is missing", a.Size())
		}
		if err := a.Add(e.Bytes); err != nil {
			return err
		}
		made := a.Created()
		if len(e.Hashes) == 0 || made[0] != e.Hashes[0] {
			return fmt.Errorf("seq %d: record bytes do not hash to the stored leaf hash", e.Seq)
		}
		if !slices.Equal(made, e.Hashes) {
			return fmt.Errorf("seq %d: stored tree hashes do not match the records", e.Seq)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if a.Size() != size {
		return fmt.Errorf("seq %d is missing", a.Size())
	}
	return nil
}
