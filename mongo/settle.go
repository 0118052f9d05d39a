package mongo

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// undo abandons a reserved batch none of whose records was inserted: it
// drops the batch's claims and clears the reservation, so that the same
// seqs take the next batch.
func (s *Store) undo(ctx context.Context, b *batch) error {
	if err := s.dropClaims(ctx, b); err != nil {
		return err
	}
	uctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.updateLog(uctx,
		bson.D{{Key: "_id", Value: b.log}, {Key: "owner", Value: s.owner}, {Key: "pending.tok", Value: b.tok}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "pending", Value: nil}}}})
	if err != nil {
		return s.wrap("undo "+recordID(b.log, b.first), err)
	}
	s.inDoubt = nil
	return nil
}

// dropClaims removes the claims that batch b made, and only those.
func (s *Store) dropClaims(ctx context.Context, b *batch) error {
	ids := make(bson.A, len(b.entries))
	for i, e := range b.entries {
		ids[i] = e.ID
	}
	dctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.ids.DeleteMany(dctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "log", Value: b.log}, {Key: "tok", Value: b.tok}})
	if err != nil {
		return s.wrap("drop claims", err)
	}
	return nil
}

// fence stops writing to b's log after another writer's record was found at
// one of b's seqs. The log is sealed if b is still its pending batch, since
// b's records now hold seqs past the committed size; b's claims are dropped
// so that its ids can be stored elsewhere. Cleanup errors are only logged:
// a stale claim is also removed by the next batch that meets it.
func (s *Store) fence(ctx context.Context, b *batch) {
	s.fenced = true
	s.inDoubt = nil
	if err := s.seal(ctx, b.log, b.tok); err != nil {
		// The batch stays pending, with its claims, until claim settles
		// it when this store leaves the log (see settleOwn): dropping the
		// claims of a batch that may yet be completed would free its ids.
		s.log.Warn("fenced: sealing failed", "log", b.log, "err", err)
		return
	}
	if err := s.dropClaims(ctx, b); err != nil {
		s.log.Warn("fenced: dropping claims failed", "log", b.log, "err", err)
	}
}

// seal closes log at its committed size if tok is its pending batch (whose
// stored records become permanent orphans past the committed size). No one
// writes to a sealed log again.
func (s *Store) seal(ctx context.Context, log string, tok int64) error {
	uctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.updateLog(uctx,
		bson.D{{Key: "_id", Value: log}, {Key: "pending.tok", Value: tok}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "sealed", Value: true}, {Key: "pending", Value: nil}}}})
	if err != nil {
		return s.wrap("seal "+log, err)
	}
	return nil
}

// settleOwn settles the pending batch of log if the log's document says
// this store owns it, whether or not the store still tracks that batch, and
// returns the log's committed size and whether the store can go on writing
// it. On FerretDB, which updates by read, modify, write back, an update of
// this store's own that outlived its deadline can write back an older copy
// of the document: a committed batch is then pending again. And a store
// that leaves a log it owns must not leave a batch pending there, since no
// one else settles it before taking the log over, and no one may ever do
// so. The caller holds wmu.
func (s *Store) settleOwn(ctx context.Context, log string) (int64, bool, error) {
	d, err := s.readLog(ctx, log)
	if err != nil {
		return 0, false, err
	}
	if d.Owner != s.owner || d.Sealed {
		return d.Committed, false, nil
	}
	return s.settlePending(ctx, *d)
}

// settle decides the in-doubt batch from the log's document: it completes
// the batch if it is still this store's pending batch (running the
// idempotent steps again), notes that it was committed, or drops its claims
// once it surely never will be. The caller holds wmu.
func (s *Store) settle(ctx context.Context) error {
	b := s.inDoubt
	d, err := s.readLog(ctx, b.log)
	if err != nil {
		return err
	}
	mine := d.Owner == s.owner && !d.Sealed
	switch {
	case d.Pending != nil && d.Pending.Tok == b.tok && mine && !s.fenced:
		if b.abandoned {
			return s.undo(ctx, b)
		}
		s.log.Info("settling in-doubt batch", "log", b.log, "first", b.first, "n", b.n())
		return s.finish(ctx, b)
	case d.Pending != nil && d.Pending.Tok == b.tok:
		// Another replica owns the log now and settles the batch when it
		// takes it over; until then the batch's ids answer "retry later".
		s.inDoubt, s.fenced = nil, true
		return nil
	case d.Committed >= b.first+b.n():
		recs, err := s.recordsAt(ctx, b.log, b.first, 1)
		if err != nil {
			return err
		}
		if len(recs) == 1 && recs[0].Tok == b.tok {
			s.inDoubt, s.settled = nil, b
			s.committed = d.Committed
			s.fenced = s.fenced || !mine
			return nil
		}
	}
	// The batch is not pending and not committed, so it never will be:
	// it was never reserved, or was undone, or its log was sealed.
	if err := s.dropClaims(ctx, b); err != nil {
		return err
	}
	s.inDoubt = nil
	s.fenced = s.fenced || !mine || d.Committed != b.first
	if !s.fenced {
		s.committed = d.Committed
	}
	return nil
}

// reserveAgain settles what the log's document says is pending, if this
// store still owns the log, and reserves b once more. The caller holds wmu.
func (s *Store) reserveAgain(ctx context.Context, b *batch) (bool, error) {
	size, usable, err := s.settleOwn(ctx, b.log)
	if err != nil || !usable || size > b.first {
		return false, err
	}
	if size < b.first {
		if ok, err := s.restoreCommitted(ctx, b.log, size, b.first); err != nil || !ok {
			return false, err
		}
	}
	s.log.Warn("reserve refused in a log this store owns at its size; settled the log's document, trying again", "log", b.log, "size", size, "committed", b.first)
	return s.reserve(ctx, b)
}

// restoreCommitted moves the committed size of log, a log this store owns,
// from size back up to committed, which this store committed itself: a
// stale write-back (see settleOwn) lost those commits. It does so only if
// every record in between is stored and nothing is pending. The caller
// holds wmu.
func (s *Store) restoreCommitted(ctx context.Context, log string, size, committed int64) (bool, error) {
	seqs := make([]int64, 0, committed-size)
	for seq := size; seq < committed; seq++ {
		seqs = append(seqs, seq)
	}
	toks, err := s.recordsTok(ctx, log, seqs)
	if err != nil {
		return false, err
	}
	n := 0
	for _, c := range toks {
		n += c
	}
	if n != len(seqs) {
		return false, nil
	}
	uctx, cancel := s.opContext(ctx)
	defer cancel()
	res, err := s.updateLog(uctx,
		bson.D{{Key: "_id", Value: log}, {Key: "owner", Value: s.owner}, {Key: "committed", Value: size},
			{Key: "pending", Value: nil}, {Key: "sealed", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "committed", Value: committed}}}})
	if err != nil {
		return false, s.wrap("restore the committed size of "+log, err)
	}
	return res.MatchedCount == 1, nil
}

// commitAgain is called when the commit of b, which this store reserved,
// was refused. If the log's document, still ours, shows no batch pending
// and the log at b's first seq, a stale write-back erased the reservation
// (see settleOwn); b's claims and records are in place, so b is reserved
// and committed again. The caller holds wmu.
func (s *Store) commitAgain(ctx context.Context, b *batch) (bool, error) {
	d, err := s.readLog(ctx, b.log)
	if err != nil {
		return false, err
	}
	if d.Owner != s.owner || d.Sealed || d.Pending != nil || d.Committed != b.first {
		return false, nil
	}
	s.log.Warn("reservation of a batch vanished from a log this store owns; reserving it again", "log", b.log, "first", b.first, "n", b.n())
	if ok, err := s.reserve(ctx, b); err != nil || !ok {
		return false, err
	}
	return s.casCommit(ctx, b.log, b.pending(), b.first+b.n())
}
