package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
)

// A signer signs checkpoints of the log the writer commits and stores them
// off the writer's path, in its checkpointer goroutine; beside it, it signs
// the unsigned tails of idle logs (idle.go). With no Config.Signer it signs
// nothing. signedAt and lastSign belong to the writer goroutine, which
// calls reset, maybeSign and finish.
type signer struct {
	cfg   Config
	store trail.Store
	head  func() trail.Head // the writer's log, whose note latest holds
	stop  <-chan struct{}   // closed when the ingester begins to close
	final bool              // sign a final checkpoint on Close

	signedAt int64     // size of the latest signed checkpoint
	lastSign time.Time // when it was signed

	latest   atomic.Pointer[[]byte] // latest stored checkpoint note of head().Log
	ch       chan checkpoint        // signed, to be stored; closed by finish
	done     chan struct{}          // closed when the checkpointer has stopped
	idleDone chan struct{}          // closed when signIdleLogs has stopped
}

type checkpoint struct {
	log  string
	size int64
	note []byte
}

func newSigner(cfg Config, store trail.Store, stop <-chan struct{}, head func() trail.Head) *signer {
	return &signer{
		cfg: cfg, store: store, head: head, stop: stop, final: !cfg.noFinalSign,
		ch:       make(chan checkpoint, 1),
		done:     make(chan struct{}),
		idleDone: make(chan struct{}),
	}
}

// start runs the checkpointer and, with a key, the idle-log signer.
func (s *signer) start() {
	go s.checkpointer()
	if s.cfg.Signer != nil {
		go s.signIdleLogs()
	} else {
		close(s.idleDone)
	}
}

func (s *signer) origin(log string) string { return s.cfg.Origin + "/" + log }

// reset forgets what was signed and starts from note, the latest stored
// checkpoint of the writer's log (nil if none), after a (re)load.
func (s *signer) reset(note []byte) {
	s.signedAt, s.lastSign = -1, time.Time{}
	s.latest.Store(nil)
	if note != nil {
		s.latest.Store(&note)
		cp, _ := trail.ParseNote(note)
		s.signedAt = cp.Size
	}
}

// maybeSign signs a checkpoint of the committed tree of log if it grew and
// the interval has passed (or final is set), and hands it to the
// checkpointer.
func (s *signer) maybeSign(log string, tree hasher, final bool) {
	if s.cfg.Signer == nil {
		return
	}
	size := tree.Size()
	if size == 0 || size == s.signedAt {
		return
	}
	now := s.cfg.Now()
	if !final && now.Sub(s.lastSign) < s.cfg.CheckpointInterval {
		return
	}
	root, err := tree.Root()
	if err != nil {
		s.cfg.Logger.Error("trail: tree root", "log", log, "size", size, "err", err)
		return
	}
	note, err := merkle.Sign(s.cfg.Signer, trail.Checkpoint{Origin: s.origin(log), Size: size, Hash: root})
	if err != nil {
		s.cfg.Logger.Error("trail: sign checkpoint", "err", err)
		return
	}
	s.signedAt, s.lastSign = size, now
	cp := checkpoint{log: log, size: size, note: note}
	select {
	case s.ch <- cp:
	default: // replace the one not yet stored: the newer covers it
		select {
		case <-s.ch:
		default:
		}
		s.ch <- cp
	}
}

// finish is the writer's last call: unless writes are refused (ok false),
// it signs the final checkpoint, and it lets the checkpointer stop once
// that is stored.
func (s *signer) finish(log string, tree hasher, ok bool) {
	if ok && s.final {
		s.maybeSign(log, tree, true)
	}
	close(s.ch)
}

// checkpointer stores signed checkpoints and publishes each once it is
// stored.
func (s *signer) checkpointer() {
	defer close(s.done)
	for cp := range s.ch {
		for attempt := 1; ; attempt++ {
			err := s.add(cp)
			if err == nil {
				s.cfg.Observer.Checkpointed(cp.log, cp.size, s.cfg.Now())
				if cp.log == s.head().Log {
					note := cp.note
					s.latest.Store(&note)
				}
				break
			}
			s.cfg.Observer.StoreFailed("add_checkpoint")
			s.cfg.Logger.Warn("trail: store checkpoint", "log", cp.log, "size", cp.size, "attempt", attempt, "err", err)
			if attempt == 5 || len(s.ch) > 0 || !s.pause(time.Duration(attempt)*200*time.Millisecond) {
				break
			}
		}
	}
}

// add stores a signed checkpoint, bounded by StoreTimeout.
func (s *signer) add(cp checkpoint) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
	defer cancel()
	return s.store.AddCheckpoint(ctx, cp.log, cp.size, cp.note)
}

// pause waits d before a retry and reports false if the ingester began to
// close meanwhile: then a checkpoint that failed is not retried, so that
// Close does not wait out an outage. The records stay valid; the next
// start, or another replica's idle-log signer, signs them.
func (s *signer) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	}
}

// latestNote returns the latest signed checkpoint note of log ("" for the
// writer's own).
func (s *signer) latestNote(ctx context.Context, log string) ([]byte, error) {
	if s.cfg.Signer == nil {
		return nil, trail.Errorf(trail.ENOTFOUND, "checkpoint signing is off on this server")
	}
	if own := s.head().Log; log == "" || log == own {
		if p := s.latest.Load(); p != nil {
			return *p, nil
		}
		log = own
	}
	b, err := s.store.Checkpoint(ctx, log, -1)
	if errors.Is(err, trail.ErrNotFound) {
		return nil, trail.Errorf(trail.ENOTFOUND, "log %q has no signed checkpoint yet", log)
	}
	return b, err
}

// wait waits for the checkpointer (the final checkpoint stored) and the
// idle-log signer to stop.
func (s *signer) wait(ctx context.Context) error {
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("ingest: close: final checkpoint: %w", ctx.Err())
	}
	select {
	case <-s.idleDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ingest: close: %w", ctx.Err())
	}
}
