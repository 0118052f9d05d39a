package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// run is the writer: it commits groups of queued requests until Close, then
// drains the queue and hands a final checkpoint to the checkpointer.
func (in *Ingester) run() {
	defer close(in.done)
	defer close(in.cpCh)
	tick := time.NewTicker(in.cfg.CheckpointInterval)
	defer tick.Stop()
	for {
		if req := in.carry; req != nil {
			in.carry = nil
			in.commit(in.gather(req))
			continue
		}
		select {
		case req := <-in.queue:
			in.commit(in.gather(req))
		case <-tick.C:
			in.maybeSign(false)
		case <-in.stop:
			for drained := false; !drained; {
				select {
				case req := <-in.queue:
					in.commit(in.gather(req))
				default:
					if req := in.carry; req != nil {
						in.carry = nil
						in.commit(in.gather(req))
					} else {
						drained = true
					}
				}
			}
			if !in.noFinalSign {
				in.maybeSign(true)
			}
			return
		}
	}
}

// gather returns first plus the requests queued behind it, up to MaxBatch
// events, waiting up to MaxWait for more. A request that would overflow the
// commit is carried to the next one.
func (in *Ingester) gather(first *request) []*request {
	group := []*request{first}
	n := len(first.preps)
	var timeout <-chan time.Time
	if in.cfg.MaxWait > 0 {
		t := time.NewTimer(in.cfg.MaxWait)
		defer t.Stop()
		timeout = t.C
	}
	for n < in.cfg.MaxBatch {
		var req *request
		select {
		case req = <-in.queue:
		default:
			if timeout == nil {
				return group
			}
			select {
			case req = <-in.queue:
			case <-timeout:
				return group
			}
		}
		if n+len(req.preps) > in.cfg.MaxBatch {
			in.carry = req
			return group
		}
		group = append(group, req)
		n += len(req.preps)
	}
	return group
}

// commit stores a group of requests in one append and answers each.
func (in *Ingester) commit(group []*request) {
	events := 0
	for _, r := range group {
		events += len(r.preps)
	}
	defer in.queued.Add(-int64(events))
	err := in.storeDown(in.cfg.Now())
	if err == nil {
		err = in.commitRetrying(group)
	}
	if err == nil {
		return
	}
	if code := trail.ErrorCode(err); code != trail.EUNAVAILABLE && code != trail.ECONFLICT {
		in.cfg.Logger.Error("trail: commit failed", "log", in.log, "events", events, "err", err)
		err = trail.Errorf(trail.EUNAVAILABLE, "the commit failed and nothing was stored; retry with the same ids")
	}
	for _, r := range group {
		r.resp <- response{err: err}
	}
}

// commitRetrying runs commitOnce, again if a racing writer stored one of
// the group's ids since the lookup. A store found unreachable starts an
// outage hold.
func (in *Ingester) commitRetrying(group []*request) error {
	for attempt := 1; ; attempt++ {
		if p := in.refused.Load(); p != nil {
			return trail.Errorf(trail.EUNAVAILABLE, "writes are refused: %v", *p)
		}
		err := in.commitOnce(group)
		switch code := trail.ErrorCode(err); {
		case code == trail.ECONFLICT && attempt < 3:
			continue
		case code == trail.EUNAVAILABLE && in.refused.Load() == nil:
			in.downUntil.Store(in.cfg.Now().Add(outageHold).UnixNano())
		}
		return err
	}
}

// commitOnce plans the group against what the store holds, appends its
// new entries in one durable write and answers every request. On error it
// answers none.
func (in *Ingester) commitOnce(group []*request) error {
	preps := make([][]*trail.Prepared, len(group))
	for i, r := range group {
		preps[i] = r.preps
	}
	var stored map[string]*trail.Entry
	if ids := clientIDs(preps); len(ids) > 0 {
		var err error
		if stored, err = in.store.Lookup(context.Background(), ids); err != nil {
			return unavailable("look up ids", err)
		}
	}
	entries, outs := plan(preps, stored, in.tree.Size(), in.log)
	if err := in.appendEntries(entries); err != nil {
		return err
	}
	for i, r := range group {
		r.resp <- outs[i].result()
	}
	in.maybeSign(false)
	return nil
}

// appendEntries gives entries their tree hashes and stores them in one
// durable write; then the tree and the head include them.
func (in *Ingester) appendEntries(entries []*trail.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	ctx := context.Background()
	if in.noTree {
		for _, e := range entries { // the right count of hashes, not computed
			e.Hashes = append(e.Hashes, make([]tlog.Hash, tlog.StoredHashCount(e.Seq+1)-tlog.StoredHashCount(e.Seq)-1)...)
		}
	} else if err := in.tree.Append(entries); err != nil {
		in.tree.Rollback()
		return fmt.Errorf("ingest: %w", err)
	}
	if err := in.store.Append(ctx, entries); err != nil {
		in.tree.Rollback()
		return in.appendFailed(ctx, err)
	}
	if in.noTree {
		in.tree = merkle.NewTree(in.tree.Size()+int64(len(entries)), nil)
	} else {
		in.tree.Commit()
	}
	in.head.Store(&trail.Head{Log: in.log, Size: in.tree.Size()})
	return nil
}

// appendFailed handles a failed store append. The outcome of a failed write
// may be unknown (a lost reply), so the head is reloaded from the store.
func (in *Ingester) appendFailed(ctx context.Context, err error) error {
	if trail.ErrorCode(err) == trail.ECONFLICT {
		return err
	}
	prev := in.log
	if lerr := in.load(ctx); lerr != nil {
		in.cfg.Logger.Error("trail: reload after a failed append", "err", lerr)
		return unavailable("append", err)
	}
	if errors.Is(err, trail.ErrFenced) {
		if in.log == prev {
			// This process is the log's only writer: someone else wrote to it.
			in.refuse(fmt.Errorf("a seq of log %q that this server was about to write is already taken: another process wrote to the log's store; writes are refused until an operator investigates (run `trail verify`)", prev))
		} else {
			in.cfg.Logger.Warn("trail: log taken over by another writer; now writing a new log", "old", prev, "new", in.log)
		}
		return trail.Errorf(trail.EUNAVAILABLE, "log %q was taken over by another writer and nothing was stored; retry with the same ids", prev)
	}
	return unavailable("append", err)
}

func unavailable(op string, err error) error {
	if trail.ErrorCode(err) == trail.EUNAVAILABLE {
		return err
	}
	return fmt.Errorf("ingest: %s: %w", op, err)
}

// maybeSign signs a checkpoint of the committed tree if it grew and the
// interval has passed (or final is set), and hands it to the checkpointer.
func (in *Ingester) maybeSign(final bool) {
	if in.cfg.Signer == nil || in.noTree || in.refused.Load() != nil {
		return
	}
	size := in.tree.Size()
	if size == 0 || size == in.signedAt {
		return
	}
	now := in.cfg.Now()
	if !final && now.Sub(in.lastSign) < in.cfg.CheckpointInterval {
		return
	}
	root, err := in.tree.Root()
	if err != nil {
		in.cfg.Logger.Error("trail: tree root", "log", in.log, "size", size, "err", err)
		return
	}
	note, err := merkle.Sign(in.cfg.Signer, trail.Checkpoint{Origin: in.origin(in.log), Size: size, Hash: root})
	if err != nil {
		in.cfg.Logger.Error("trail: sign checkpoint", "err", err)
		return
	}
	in.signedAt, in.lastSign = size, now
	cp := checkpoint{log: in.log, size: size, note: note}
	select {
	case in.cpCh <- cp:
	default: // replace the one not yet stored: the newer covers it
		select {
		case <-in.cpCh:
		default:
		}
		in.cpCh <- cp
	}
}

// checkpointer stores signed checkpoints off the writer's path and
// publishes each once it is stored.
func (in *Ingester) checkpointer() {
	defer close(in.cpDone)
	for cp := range in.cpCh {
		for attempt := 1; ; attempt++ {
			err := in.store.AddCheckpoint(context.Background(), cp.log, cp.size, cp.note)
			if err == nil {
				if cp.log == in.Head().Log {
					note := cp.note
					in.latest.Store(&note)
				}
				break
			}
			in.cfg.Logger.Warn("trail: store checkpoint", "log", cp.log, "size", cp.size, "attempt", attempt, "err", err)
			if attempt == 5 || len(in.cpCh) > 0 {
				break
			}
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
	}
}
