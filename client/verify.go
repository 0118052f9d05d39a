package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrProof means a proof does not check out: the server's log is not what
// its signed checkpoints say, or the proof is corrupt.
var ErrProof = errors.New("trail client: proof does not verify")

// OpenCheckpoint verifies a signed checkpoint (a note) with the verifier
// key and returns its body.
func OpenCheckpoint(noteText []byte, verifierKey string) (trail.Checkpoint, error) {
	return merkle.Open(noteText, verifierKey)
}

// Verify checks the proof's signed checkpoint with the verifier key, then
// that the record's leaf hash is in that checkpoint's tree at p.Seq. It
// returns the checkpoint. It trusts p.LeafHash: compare it with
// tlog.RecordHash of the bytes from Get, or use Client.VerifyRecord.
func (p *RecordProof) Verify(verifierKey string) (trail.Checkpoint, error) {
	cp, err := OpenCheckpoint([]byte(p.Checkpoint), verifierKey)
	if err != nil {
		return cp, err
	}
	if cp.Size != p.Size {
		return cp, fmt.Errorf("%w: proof is for size %d, its checkpoint for %d", ErrProof, p.Size, cp.Size)
	}
	if err := tlog.CheckRecord(p.Proof, p.Size, cp.Hash, p.Seq, p.LeafHash); err != nil {
		return cp, fmt.Errorf("%w: record %d in tree of %d: %v", ErrProof, p.Seq, p.Size, err)
	}
	return cp, nil
}

// Verify checks that the tree of newer extends the tree of older, given
// their checkpoints (from OpenCheckpoint).
func (p *ConsistencyProof) Verify(older, newer trail.Checkpoint) error {
	if older.Size != p.From || newer.Size != p.To {
		return fmt.Errorf("%w: proof is from %d to %d, checkpoints are of %d and %d", ErrProof, p.From, p.To, older.Size, newer.Size)
	}
	if err := tlog.CheckTree(p.Proof, newer.Size, newer.Hash, older.Size, older.Hash); err != nil {
		return fmt.Errorf("%w: tree of %d does not extend tree of %d: %v", ErrProof, newer.Size, older.Size, err)
	}
	return nil
}

// VerifyRecord fetches the record with id and proves it is in the log: its
// bytes hash to its leaf hash, and that leaf is in the tree of the latest
// signed checkpoint, which verifies with the (pinned) verifier key. It
// returns the bytes and the checkpoint.
func (c *Client) VerifyRecord(ctx context.Context, id, verifierKey string) ([]byte, trail.Checkpoint, error) {
	b, leaf, err := c.Get(ctx, id)
	if err != nil {
		return nil, trail.Checkpoint{}, err
	}
	p, err := c.Proof(ctx, id, 0)
	if err != nil {
		return b, trail.Checkpoint{}, err
	}
	if p.LeafHash != leaf {
		return b, trail.Checkpoint{}, fmt.Errorf("%w: proof is for leaf %s, record bytes hash to %s", ErrProof, p.LeafHash, leaf)
	}
	cp, err := p.Verify(verifierKey)
	return b, cp, err
}
