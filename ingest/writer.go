package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// A writer holds what the writer goroutine alone touches: the log it
// appends to, that log's tree, and a request carried to the next commit.
type writer struct {
	log   string
	tree  hasher
	carry *request // overflowed the last commit; leads the next
}

// A hasher gives appended entries their stored hashes and knows the
// committed tree's root. Servers use *merkle.Tree; a benchmark may give
// New one that does not hash (Config.newTree).
type hasher interface {
	Size() int64
	Append(entries []*trail.Entry) error // fills in Hashes; pending until Commit
	Commit()
	Rollback()
	Root() (tlog.Hash, error)
}

// run is the writer: it commits groups of queued requests until Close, then
// drains the queue and hands a final checkpoint to the checkpointer.
func (in *Ingester) run() {
	defer close(in.done)
	tick := time.NewTicker(in.cfg.CheckpointInterval)
	defer tick.Stop()
	for {
		if req := in.w.carry; req != nil {
			in.w.carry = nil
			in.commit(in.gather(req))
			continue
		}
		select {
		case req := <-in.queue:
			in.commit(in.gather(req))
		case <-tick.C:
			in.signCommitted(false)
		case <-in.stop:
			in.drain()
			in.sign.finish(in.w.log, in.w.tree, in.refused.Load() == nil)
			return
		}
	}
}

// drain commits every request still queued or carried.
func (in *Ingester) drain() {
	for {
		select {
		case req := <-in.queue:
			in.commit(in.gather(req))
		default:
			req := in.w.carry
			if req == nil {
				return
			}
			in.w.carry = nil
			in.commit(in.gather(req))
		}
	}
}

// signCommitted has the signer sign the committed tree, unless writes are
// refused: then the log is in doubt and no checkpoint may vouch for it.
func (in *Ingester) signCommitted(final bool) {
	if in.refused.Load() == nil {
		in.sign.maybeSign(in.w.log, in.w.tree, final)
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
			in.w.carry = req
			return group
		}
		group = append(group, req)
		n += len(req.preps)
	}
	return group
}

// commit stores a group of requests in one append and answers each.
func (in *Ingester) commit(group []*request) {
	err := in.storeDown(in.cfg.Now())
	if err == nil {
		err = in.commitRetrying(group)
	}
	if err == nil {
		in.failed.Store(nil)
		return
	}
	failed := err
	in.failed.Store(&failed)
	events := in.unqueueGroup(group)
	if trail.ErrorCode(err) != trail.EUNAVAILABLE {
		in.cfg.Logger.Error("trail: commit failed", "log", in.w.log, "events", events, "err", err)
		err = trail.Errorf(trail.EUNAVAILABLE, "the commit failed and nothing was stored; retry with the same ids")
	}
	for _, r := range group {
		r.resp <- response{err: err}
	}
}

// unqueueGroup takes the group's requests out of the queue's counts, and
// returns how many events they held. It runs before they are answered, so
// that a client that sends again on its answer finds the room it left.
func (in *Ingester) unqueueGroup(group []*request) int64 {
	events, bytes := int64(0), int64(0)
	for _, r := range group {
		events += int64(len(r.preps))
		bytes += r.bytes
	}
	in.unqueue(events, bytes)
	return events
}

// replans is how many times a group is planned when the store keeps
// refusing ids that the lookup did not find.
const replans = 3

// commitRetrying runs commitOnce, again if the store refused an id that a
// racing writer stored since the lookup: the new lookup finds it, and the
// plan, not the store, decides whether it is a replay or a conflict. A
// store found unreachable starts an outage hold.
func (in *Ingester) commitRetrying(group []*request) error {
	for attempt := 1; ; attempt++ {
		if p := in.refused.Load(); p != nil {
			return trail.Errorf(trail.EUNAVAILABLE, "writes are refused: %v", *p)
		}
		err := in.commitOnce(group)
		switch {
		case duplicate(err) && attempt < replans:
			continue
		case duplicate(err):
			in.cfg.Logger.Warn("trail: ids keep being stored by another writer", "log", in.w.log, "err", err)
			return trail.Errorf(trail.EUNAVAILABLE, "ids of this batch were being stored by another writer at the same time and nothing was stored; retry with the same ids")
		case trail.ErrorCode(err) == trail.EUNAVAILABLE && in.refused.Load() == nil:
			in.downUntil.Store(in.cfg.Now().Add(outageHold).UnixNano())
		}
		return err
	}
}

// duplicate reports whether the store refused an append for an id it
// holds or that the batch repeats.
func duplicate(err error) bool { return errors.Is(err, trail.ErrDuplicateID) }

// commitOnce plans the group against what the store holds, appends its
// new entries in one durable write, takes the group out of the queue's
// counts and answers every request. On error it does neither.
func (in *Ingester) commitOnce(group []*request) error {
	preps := make([][]*trail.Prepared, len(group))
	for i, r := range group {
		preps[i] = r.preps
	}
	stored, err := in.lookup(clientIDs(preps))
	if err != nil {
		return err
	}
	entries, outs := plan(preps, stored, in.w.tree.Size(), in.w.log)
	if err := in.appendEntries(entries); err != nil {
		return err
	}
	in.unqueueGroup(group)
	for i, r := range group {
		r.resp <- outs[i].result()
	}
	in.signCommitted(false)
	return nil
}

// lookup returns the stored entries with the ids.
func (in *Ingester) lookup(ids []string) (map[string]*trail.Entry, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ctx, cancel := in.storeContext()
	defer cancel()
	stored, err := in.store.Lookup(ctx, ids)
	if err != nil {
		in.cfg.Observer.StoreFailed("lookup")
		return nil, unavailable("look up ids", err)
	}
	return stored, nil
}

// appendEntries gives entries their tree hashes and stores them in one
// durable write; then the tree and the head include them.
func (in *Ingester) appendEntries(entries []*trail.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	t := in.w.tree
	if err := t.Append(entries); err != nil {
		t.Rollback()
		return fmt.Errorf("ingest: %w", err)
	}
	ctx, cancel := in.storeContext()
	start := time.Now()
	err := in.store.Append(ctx, entries)
	took := time.Since(start)
	cancel()
	if err != nil {
		if !duplicate(err) { // a racing writer's id, not a failing store
			in.cfg.Observer.StoreFailed("append")
		}
		t.Rollback()
		return in.appendFailed(err)
	}
	t.Commit()
	in.head.Store(&trail.Head{Log: in.w.log, Size: t.Size()})
	if in.cfg.Committed != nil {
		in.cfg.Committed(entries) // after the head: a follower reading the head then subscribing misses nothing
	}
	in.cfg.Observer.Committed(in.w.log, len(entries), t.Size(), took)
	return nil
}

// appendFailed handles a failed store append. The outcome of a failed write
// may be unknown (a lost reply), so the head is reloaded from the store.
func (in *Ingester) appendFailed(err error) error {
	if duplicate(err) {
		return err // nothing was stored, and the log is as it was
	}
	prev := in.w.log
	ctx, cancel := in.storeContext()
	defer cancel()
	if lerr := in.load(ctx); lerr != nil {
		in.cfg.Logger.Error("trail: reload after a failed append", "err", lerr)
		return unavailable("append", err)
	}
	if errors.Is(err, trail.ErrFenced) {
		if in.w.log == prev {
			// This process is the log's only writer: someone else wrote to it.
			in.refuse(fmt.Errorf("a seq of log %q that this server was about to write is already taken: another process wrote to the log's store; writes are refused until an operator investigates (run `trail verify`)", prev))
		} else {
			in.cfg.Logger.Warn("trail: log taken over by another writer; now writing a new log", "old", prev, "new", in.w.log)
		}
		return trail.Errorf(trail.EUNAVAILABLE, "log %q was taken over by another writer and nothing was stored; retry with the same ids", prev)
	}
	return unavailable("append", err)
}

// unavailable wraps the error of a store call. A call that outlived
// StoreTimeout counts as an outage, as the stores count their own timeouts.
func unavailable(op string, err error) error {
	if trail.ErrorCode(err) == trail.EUNAVAILABLE {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("ingest: %s: no answer within the store timeout: %w (%w)", op, trail.ErrUnavailable, err)
	}
	return fmt.Errorf("ingest: %s: %w", op, err)
}
