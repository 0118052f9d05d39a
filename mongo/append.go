package mongo

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	trail "github.com/trail-audit/trail"
	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// recordDoc is a record as stored. B holds the record bytes verbatim, so
// that verification never depends on a BSON round trip; the other fields
// are copies for the indexes. Tok names the batch that wrote it.
type recordDoc struct {
	ID         string `bson:"_id"` // "<log>/<seq>"
	Log        string `bson:"log"`
	Seq        int64  `bson:"seq"`
	EventID    string `bson:"id"`
	T          int64  `bson:"t"` // record time, unix nanoseconds
	Tenant     string `bson:"tenant"`
	Actor      string `bson:"actor"`
	ActorType  string `bson:"actor_type"`
	Action     string `bson:"action"`
	Target     string `bson:"target"`
	TargetType string `bson:"target_type"`
	Source     string `bson:"source"`
	Outcome    string `bson:"outcome"`
	B          string `bson:"b"`
	D          []byte `bson:"d"` // idempotency digest
	H          []byte `bson:"h"` // stored hashes, 32 bytes each
	Tok        int64  `bson:"tok"`
}

// idDoc claims an event id for one record, across all logs.
type idDoc struct {
	ID  string `bson:"_id"`
	Log string `bson:"log"`
	Seq int64  `bson:"seq"`
	Tok int64  `bson:"tok"`
}

// batch is one Append in progress.
type batch struct {
	log     string
	first   int64
	tok     int64
	entries []*trail.Entry
	// abandoned is set once Append has answered with an error that says
	// the batch was not stored: settling then only cleans up.
	abandoned bool
}

func recordID(log string, seq int64) string { return log + "/" + strconv.FormatInt(seq, 10) }

func (b *batch) n() int64 { return int64(len(b.entries)) }

func (b *batch) pending() *pendingDoc { return &pendingDoc{First: b.first, N: b.n(), Tok: b.tok} }

func (b *batch) idDocs() []any {
	docs := make([]any, len(b.entries))
	for i, e := range b.entries {
		docs[i] = idDoc{ID: e.ID, Log: b.log, Seq: e.Seq, Tok: b.tok}
	}
	return docs
}

func (b *batch) recordDocs() []any {
	docs := make([]any, len(b.entries))
	for i, e := range b.entries {
		t := e.TargetOrZero()
		docs[i] = recordDoc{
			ID: recordID(b.log, e.Seq), Log: b.log, Seq: e.Seq, EventID: e.ID, T: e.Time.UnixNano(),
			Tenant: e.Tenant, Actor: e.Actor.ID, ActorType: e.Actor.Type, Action: e.Action,
			Target: t.ID, TargetType: t.Type, Source: e.Source.Service, Outcome: e.Outcome,
			B: string(e.Bytes), D: e.Digest[:], H: trail.EncodeHashes(e.Hashes), Tok: b.tok,
		}
	}
	return docs
}

// sameAs reports whether entries are the batch b again, byte for byte (a
// retry of an Append whose outcome was in doubt). Entries rebuilt from the
// same events differ in their receive time, so their receipts would not
// match what b stored.
func (b *batch) sameAs(entries []*trail.Entry) bool {
	if len(entries) != len(b.entries) {
		return false
	}
	for i, e := range entries {
		o := b.entries[i]
		if e.ID != o.ID || e.Log != o.Log || e.Seq != o.Seq || !bytes.Equal(e.Bytes, o.Bytes) || !slices.Equal(e.Hashes, o.Hashes) {
			return false
		}
	}
	return true
}

// Append stores entries at the head of the claimed log, atomically by
// visibility:
//
//  1. reserve: the log document records the batch as pending, on condition
//     that this store owns the log and its committed size is the first seq;
//  2. claim: the ids are inserted into ids, so that no other batch can
//     store them; a taken id ends the batch with ErrDuplicateID;
//  3. insert: the records are inserted, unordered; a taken "<log>/<seq>"
//     means another writer appended: ErrFenced;
//  4. commit: the log document's committed size moves past the batch, on
//     condition that the batch is still the pending one.
//
// Readers show only seqs below the committed size, so a batch is visible
// whole or not at all. If a step fails without an answer (network, timeout)
// the outcome is in doubt: Append returns ErrUnavailable and the next Head
// or Append settles it, completing the batch if it can.
func (s *Store) Append(ctx context.Context, entries []*trail.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if b := s.inDoubt; b != nil && b.sameAs(entries) {
		// The caller retries the batch whose outcome was in doubt.
		if err := s.settle(ctx); err != nil {
			return fmt.Errorf("mongo: append: %w", err)
		}
		if s.committed >= b.first+b.n() {
			return nil
		}
	}
	if err := s.ready(ctx); err != nil {
		return fmt.Errorf("mongo: append: %w", err)
	}
	if err := s.check(entries); err != nil {
		return fmt.Errorf("mongo: append: %w", err)
	}
	if !s.leaseOK() {
		return fmt.Errorf("mongo: append: lease on %s not renewed: %w", s.head, trail.ErrUnavailable)
	}
	b := &batch{log: s.head, first: s.committed, tok: randomTok(), entries: entries}
	if err := s.write(ctx, b); err != nil {
		return fmt.Errorf("mongo: append: %w", err)
	}
	return nil
}

// check validates entries against the head before anything is written.
// Entries at seqs below the committed size are ErrFenced (the caller holds
// a stale head); the store keeps its log. The caller holds wmu.
func (s *Store) check(entries []*trail.Entry) error {
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		if e.Log != s.head {
			return fmt.Errorf("entry %d is for log %q, want %q: reload the head", i, e.Log, s.head)
		}
		if i == 0 && e.Seq < s.committed {
			if b := s.settled; b != nil && b.log == e.Log && e.Seq >= b.first {
				// The caller's head predates a batch whose outcome was in
				// doubt and that was stored after all. No one else wrote.
				return fmt.Errorf("a batch whose outcome was in doubt was stored at %s/%d; reload the head: %w",
					b.log, b.first, trail.ErrUnavailable)
			}
			return fmt.Errorf("entry 0 is at seq %d of %s, which holds %d: %w", e.Seq, s.head, s.committed, trail.ErrFenced)
		}
		if e.Seq != s.committed+int64(i) {
			return fmt.Errorf("entry %d is at seq %d, want %d: seqs must be dense from the head", i, e.Seq, s.committed+int64(i))
		}
		if len(e.Hashes) == 0 || len(e.Bytes) == 0 {
			return fmt.Errorf("entry %d (%s) has no bytes or hashes", i, e.ID)
		}
		if seen[e.ID] {
			return fmt.Errorf("entry %d: id %q appears twice in the batch: %w", i, e.ID, trail.ErrDuplicateID)
		}
		seen[e.ID] = true
	}
	return nil
}

// write runs the four steps of Append for b. The caller holds wmu.
func (s *Store) write(ctx context.Context, b *batch) error {
	ok, err := s.reserve(ctx, b)
	if err == nil && !ok {
		// Refused at the size this store committed: either another
		// replica took the log over, or a stale write-back of the log's
		// document undid our last commit (see settleOwn).
		ok, err = s.reserveAgain(ctx, b)
	}
	if err != nil {
		s.inDoubt = b
		return err
	}
	if !ok {
		s.fenced = true
		return fmt.Errorf("reserve %s/%d: %w", b.log, b.first, trail.ErrFenced)
	}
	return s.finish(ctx, b)
}

// finish runs steps 2-4 for a reserved batch; they are idempotent, so
// settling an in-doubt batch runs them again. The caller holds wmu.
func (s *Store) finish(ctx context.Context, b *batch) error {
	if err := s.claimIDs(ctx, b); err != nil {
		if isUnavailable(err) {
			s.inDoubt = b
			return err
		}
		// A taken id: the batch cannot be stored. No record was inserted,
		// so the seqs stay free: undo the claims and the reservation.
		b.abandoned = true
		if uerr := s.undo(ctx, b); uerr != nil {
			s.inDoubt = b
			s.log.Warn("append: undo failed; will retry", "log", b.log, "first", b.first, "err", uerr)
		}
		return err
	}
	if err := s.insertRecords(ctx, b, b.recordDocs()); err != nil {
		if isUnavailable(err) {
			s.inDoubt = b
			return err
		}
		// Another writer's record at one of our seqs, or an error that no
		// retry will cure: some records may be stored past the committed
		// size, so this log takes no more batches.
		s.fence(ctx, b)
		return err
	}
	if err := s.commit(ctx, b); err != nil {
		return err
	}
	return nil
}

// reserve is step 1. It reports false if this store does not own the log at
// the batch's first seq any more.
func (s *Store) reserve(ctx context.Context, b *batch) (bool, error) {
	until := s.cfg.Now().Add(s.cfg.LeaseTTL)
	uctx, cancel := s.opContext(ctx)
	res, err := s.updateLog(uctx,
		bson.D{{Key: "_id", Value: b.log}, {Key: "owner", Value: s.owner}, {Key: "committed", Value: b.first},
			{Key: "pending", Value: nil}, {Key: "sealed", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "pending", Value: b.pending()}, {Key: "expires", Value: until}}}})
	cancel()
	if err != nil {
		return false, s.wrap("reserve "+recordID(b.log, b.first), err)
	}
	if res.MatchedCount == 0 {
		return false, nil
	}
	s.lmu.Lock()
	if s.leaseLog == b.log && until.After(s.leaseUntil) {
		s.leaseUntil = until
	}
	s.lmu.Unlock()
	return true, nil
}

// insertRecords is step 3. A "<log>/<seq>" held by another batch means
// another writer appended to the log: ErrFenced.
func (s *Store) insertRecords(ctx context.Context, b *batch, docs []any) error {
	dups, err := s.insertMany(ctx, s.records, docs)
	if err != nil {
		return s.wrap("insert records", err)
	}
	if len(dups) == 0 {
		return nil
	}
	first := docs[dups[0]].(recordDoc)
	recs, err := s.recordsAt(ctx, b.log, first.Seq, 1)
	if err != nil {
		return err
	}
	if len(recs) == 1 && recs[0].Tok == b.tok {
		// Ours, from an earlier try; check the rest.
		var rest []int64
		for _, i := range dups {
			rest = append(rest, docs[i].(recordDoc).Seq)
		}
		mine, err := s.recordsTok(ctx, b.log, rest)
		if err != nil {
			return err
		}
		if mine[b.tok] == len(rest) {
			return nil
		}
	}
	return fmt.Errorf("insert records: %s is taken: %w", first.ID, trail.ErrFenced)
}

// commit is step 4.
func (s *Store) commit(ctx context.Context, b *batch) error {
	ok, err := s.casCommit(ctx, b.log, b.pending(), b.first+b.n())
	if err == nil && !ok {
		ok, err = s.commitAgain(ctx, b)
	}
	if err != nil {
		s.inDoubt = b
		return err
	}
	if ok {
		s.committed = b.first + b.n()
		if s.inDoubt == b {
			s.settled = b
		} else {
			s.settled = nil // the caller's head is current
		}
		s.inDoubt = nil
		return nil
	}
	// The batch is no longer ours to commit: another replica took the log
	// over and completed the batch, or sealed the log, or will decide.
	s.fenced = true
	s.inDoubt = b
	if err := s.settle(ctx); err != nil {
		return err
	}
	if s.committed >= b.first+b.n() {
		return nil // completed by the new owner: stored and visible
	}
	return fmt.Errorf("commit %s/%d: %w", b.log, b.first, trail.ErrFenced)
}

// casCommit moves the committed size of log to size if p is still its
// pending batch and this store owns the log.
func (s *Store) casCommit(ctx context.Context, log string, p *pendingDoc, size int64) (bool, error) {
	uctx, cancel := s.opContext(ctx)
	defer cancel()
	res, err := s.updateLog(uctx,
		bson.D{{Key: "_id", Value: log}, {Key: "owner", Value: s.owner}, {Key: "pending.tok", Value: p.Tok}, {Key: "committed", Value: p.First}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "committed", Value: size}, {Key: "pending", Value: nil}}}})
	if err != nil {
		return false, s.wrap("commit "+recordID(log, p.First), err)
	}
	if res.MatchedCount == 1 {
		s.noteSize(log, size)
	}
	return res.MatchedCount == 1, nil
}

// insertMany inserts docs unordered and returns the indexes of the ones
// refused as duplicate keys.
func (s *Store) insertMany(ctx context.Context, c *driver.Collection, docs []any) ([]int, error) {
	ictx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := c.InsertMany(ictx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil, nil
	}
	var bwe driver.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return nil, err
	}
	var dups []int
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return nil, err
		}
		dups = append(dups, we.Index)
	}
	return dups, nil
}

// recordsAt returns the stored records of log with first <= seq < first+n,
// visible or not, in seq order.
func (s *Store) recordsAt(ctx context.Context, log string, first, n int64) ([]recordDoc, error) {
	ids := make([]string, 0, n)
	for seq := first; seq < first+n; seq++ {
		ids = append(ids, recordID(log, seq))
	}
	recs, err := findByIDs[recordDoc](ctx, s, s.records, ids, nil)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b recordDoc) int { return cmp.Compare(a.Seq, b.Seq) })
	return recs, nil
}

// recordsTok counts the records of log at seqs by batch token.
func (s *Store) recordsTok(ctx context.Context, log string, seqs []int64) (map[int64]int, error) {
	ids := make([]string, len(seqs))
	for i, seq := range seqs {
		ids[i] = recordID(log, seq)
	}
	recs, err := findByIDs[struct {
		Tok int64 `bson:"tok"`
	}](ctx, s, s.records, ids, bson.D{{Key: "tok", Value: 1}})
	if err != nil {
		return nil, err
	}
	m := map[int64]int{}
	for _, r := range recs {
		m[r.Tok]++
	}
	return m, nil
}
