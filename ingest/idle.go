package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
)

// signIdleLogs runs beside the writer. With several replicas on one store,
// a replica that dies (or is scaled away) leaves records after its last
// checkpoint that nobody would ever sign, and verification could not tell
// them from forged ones. So every few intervals each replica looks for
// other logs that stopped growing with an unsigned tail, checks that tail
// the way start-up checks its own log, and signs it with the shared key.
// Committed records are immutable, so a checkpoint of another log's
// committed size is a true statement whoever signs it; a log still being
// written is left to its writer.
func (s *signer) signIdleLogs() {
	defer close(s.idleDone)
	every := max(5*s.cfg.CheckpointInterval, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	seen := map[string]int64{}
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		s.signIdle(ctx, seen)
		cancel()
	}
}

func (s *signer) signIdle(ctx context.Context, seen map[string]int64) {
	heads, err := s.store.Logs(ctx)
	if err != nil {
		return // the writer reports outages
	}
	own := s.head().Log
	for _, h := range heads {
		prev, ok := seen[h.Log]
		seen[h.Log] = h.Size
		if h.Log == own || h.Size == 0 || !ok || prev != h.Size {
			continue // ours, empty, or still growing: its writer signs
		}
		note, err := s.store.Checkpoint(ctx, h.Log, -1)
		if err != nil && !errors.Is(err, trail.ErrNotFound) {
			continue
		}
		if note != nil {
			cp, err := trail.ParseNote(note)
			if err != nil || cp.Size >= h.Size {
				continue
			}
		}
		audit, err := checkLog(ctx, s.store, h, note, s.cfg.Verifier, s.origin(h.Log))
		if err != nil {
			s.cfg.Logger.Error("trail: idle log fails its integrity check; not signing it", "log", h.Log, "err", err)
			continue
		}
		root, err := audit.Root(h.Size)
		if err != nil {
			continue
		}
		signed, err := merkle.Sign(s.cfg.Signer, trail.Checkpoint{Origin: s.origin(h.Log), Size: h.Size, Hash: root})
		if err == nil {
			err = s.store.AddCheckpoint(ctx, h.Log, h.Size, signed)
		}
		if err != nil {
			s.cfg.Logger.Warn("trail: sign idle log", "log", h.Log, "err", err)
			continue
		}
		s.cfg.Logger.Info("trail: signed the unsigned tail of an idle log", "log", h.Log, "size", h.Size)
	}
}
