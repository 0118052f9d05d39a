package grpcapi

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"github.com/trail-audit/trail"
	trailv1 "github.com/trail-audit/trail/gen/trail/v1"
	"github.com/trail-audit/trail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint returns the latest signed checkpoint of a log, verbatim and
// parsed, with the key that verifies it.
func (t *trailService) Checkpoint(ctx context.Context, req *connect.Request[trailv1.CheckpointRequest]) (*connect.Response[trailv1.CheckpointResponse], error) {
	s := t.s
	log := s.logOrHead(req.Msg.GetLog())
	note, cp, err := s.latest(ctx, log)
	if err != nil {
		return nil, s.error(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&trailv1.CheckpointResponse{
		Note: note, Log: log, Size: cp.Size, RootHash: cp.Hash[:], VerifierKey: s.ingester.Verifier(),
	}), nil
}

// InclusionProof proves that a record is in its log's tree of a signed
// size: the latest checkpoint's, or a stored checkpoint of exactly size.
func (t *trailService) InclusionProof(ctx context.Context, req *connect.Request[trailv1.InclusionProofRequest]) (*connect.Response[trailv1.InclusionProofResponse], error) {
	out, err := t.s.proveRecord(ctx, req.Msg.GetId(), req.Msg.GetSize())
	if err != nil {
		return nil, t.s.error(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(out), nil
}

// proveRecord does InclusionProof's work, with the rules of GET
// /logs/{id}/proof.
func (s *server) proveRecord(ctx context.Context, id string, size int64) (*trailv1.InclusionProofResponse, error) {
	if size < 0 {
		return nil, trail.Errorf(trail.EINVALID, "field \"size\" must be positive (0: the latest), not %d", size)
	}
	e, err := s.visible(ctx, id)
	if err != nil {
		return nil, err
	}
	var note []byte
	switch {
	case size == 0:
		var cp trail.Checkpoint
		note, cp, err = s.latest(ctx, e.Log)
		if trail.ErrorCode(err) == trail.ENOTFOUND || err == nil && e.Seq >= cp.Size {
			err = trail.Errorf(codeNotCovered, "record %q (log %q, seq %d) is not yet covered by a signed checkpoint; retry after the next one", id, e.Log, e.Seq)
		}
		size = cp.Size
	case e.Seq >= size:
		err = trail.Errorf(trail.EINVALID, "record %q has seq %d, so the tree of size %d does not hold it; ask for a size above %d, or 0 for the latest", id, e.Seq, size, e.Seq)
	default:
		note, err = s.store.Checkpoint(ctx, e.Log, size)
		if trail.ErrorCode(err) == trail.ENOTFOUND {
			err = trail.Errorf(trail.ENOTFOUND, "no signed checkpoint of log %q at size %d; ask for 0, the latest", e.Log, size)
		}
	}
	if err != nil {
		return nil, err
	}
	proof, err := merkle.ProveRecord(ctx, s.store, e.Log, e.Seq, size)
	if err != nil {
		return nil, fmt.Errorf("grpcapi: prove record %s (log %s, seq %d) in size %d: %w", id, e.Log, e.Seq, size, err)
	}
	r := record(e)
	return &trailv1.InclusionProofResponse{
		Id: id, Log: e.Log, Seq: e.Seq, Size: size, LeafHash: r.Receipt.LeafHash, Proof: hashes(proof), Checkpoint: note,
	}, nil
}

// ConsistencyProof proves that a log's tree of size from is a prefix of its
// tree of size to (0: the latest signed size).
func (t *trailService) ConsistencyProof(ctx context.Context, req *connect.Request[trailv1.ConsistencyProofRequest]) (*connect.Response[trailv1.ConsistencyProofResponse], error) {
	out, err := t.s.proveTree(ctx, req.Msg)
	if err != nil {
		return nil, t.s.error(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(out), nil
}

// proveTree does ConsistencyProof's work, with the rules of GET
// /proof/consistency.
func (s *server) proveTree(ctx context.Context, m *trailv1.ConsistencyProofRequest) (*trailv1.ConsistencyProofResponse, error) {
	log := s.logOrHead(m.GetLog())
	from, to := m.GetFrom(), m.GetTo()
	if from < 1 {
		return nil, trail.Errorf(trail.EINVALID, "field \"from\" must be a positive integer, not %d", from)
	}
	_, cp, err := s.latest(ctx, log)
	if err != nil {
		return nil, err
	}
	switch {
	case to < 0:
		return nil, trail.Errorf(trail.EINVALID, "field \"to\" must be positive (0: the latest), not %d", to)
	case to == 0:
		to = cp.Size
	}
	switch {
	case from > to:
		return nil, trail.Errorf(trail.EINVALID, "field \"from\" (%d) is above \"to\" (%d)", from, to)
	case to > cp.Size:
		return nil, trail.Errorf(trail.EINVALID, "field \"to\" (%d) is above the size of the latest signed checkpoint of log %q (%d)", to, log, cp.Size)
	}
	proof, err := merkle.ProveTree(ctx, s.store, log, from, to)
	if err != nil {
		return nil, fmt.Errorf("grpcapi: prove tree of log %s from %d to %d: %w", log, from, to, err)
	}
	return &trailv1.ConsistencyProofResponse{Log: log, From: from, To: to, Proof: hashes(proof)}, nil
}

// logOrHead returns log, by default the one this node writes.
func (s *server) logOrHead(log string) string {
	if log != "" {
		return log
	}
	return s.ingester.Head().Log
}

// latest returns the latest signed checkpoint of log, as a note and parsed.
func (s *server) latest(ctx context.Context, log string) ([]byte, trail.Checkpoint, error) {
	if s.ingester.Verifier() == "" {
		return nil, trail.Checkpoint{}, trail.Errorf(trail.ENOTFOUND, "signing is off: this server publishes no checkpoints or proofs")
	}
	note, err := s.ingester.Checkpoint(ctx, log)
	if trail.ErrorCode(err) == trail.ENOTFOUND {
		return nil, trail.Checkpoint{}, trail.Errorf(trail.ENOTFOUND, "log %q has no signed checkpoint yet", log)
	} else if err != nil {
		return nil, trail.Checkpoint{}, fmt.Errorf("grpcapi: latest checkpoint of %s: %w", log, err)
	}
	cp, err := trail.ParseNote(note)
	if err != nil {
		return nil, trail.Checkpoint{}, fmt.Errorf("grpcapi: latest checkpoint of %s: %w", log, err)
	}
	return note, cp, nil
}

// hashes converts a proof's hashes to bytes.
func hashes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}
