package mongo

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	trail "github.com/trail-audit/trail"
	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
)

// lease is the state of the claimed log's lease, with the locks that the
// writer and the renewer share. Store embeds it.
type lease struct {
	// umu serialises updates of log documents; see updateLog.
	umu sync.Mutex

	// lmu guards the lease, which the renewer updates without wmu.
	lmu        sync.Mutex
	leaseLog   string
	leaseUntil time.Time // by our clock; writes stop before it
	leaseLost  bool
}

// claim takes a log for writing: the first log of this prefix whose lease
// expired and that is not sealed, else a new one. Taking over a log settles
// its pending batch; a batch that cannot be completed seals the log. So
// does leaving the log this store still owns. The caller holds wmu.
func (s *Store) claim(ctx context.Context) error {
	if s.head != "" {
		if _, _, err := s.settleOwn(ctx, s.head); err != nil {
			return fmt.Errorf("claim log: leave %s: %w", s.head, err)
		}
	}
	s.head, s.committed, s.fenced, s.inDoubt, s.settled = "", 0, false, nil, nil
	for attempt := 0; attempt < 100; attempt++ {
		docs, err := s.findLogs(ctx, bson.D{})
		if err != nil {
			return fmt.Errorf("claim log: %w", err)
		}
		now := s.cfg.Now()
		last := int64(0)
		for _, d := range docs {
			n, ok := s.logNumber(d.ID)
			if !ok {
				continue
			}
			last = maxInt(last, n)
			if d.Sealed || d.Expires.After(now) {
				continue
			}
			ok, err := s.takeOver(ctx, d)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		}
		// Nothing to take over: create the next log.
		name := s.cfg.LogPrefix + "-" + strconv.FormatInt(last+1, 10)
		until := s.cfg.Now().Add(s.cfg.LeaseTTL)
		ictx, cancel := s.opContext(ctx)
		_, err = s.logs.InsertOne(ictx, logDoc{ID: name, Owner: s.owner, Expires: until, Created: now.UTC()})
		cancel()
		if driver.IsDuplicateKeyError(err) {
			continue // another replica created it first
		}
		if err != nil {
			return s.wrap("claim log: create", err)
		}
		s.setHead(name, 0, until)
		s.log.Info("created log", "log", name, "owner", s.owner)
		return nil
	}
	return fmt.Errorf("claim log: too many concurrent claims: %w", trail.ErrUnavailable)
}

// takeOver claims the expired log d for writing, after settling its
// pending batch. It reports false if another replica won the log or the log
// had to be sealed.
func (s *Store) takeOver(ctx context.Context, d logDoc) (bool, error) {
	until, ok, err := s.seize(ctx, d)
	if err != nil || !ok {
		return false, err
	}
	size, usable, err := s.settlePending(ctx, d)
	if err != nil || !usable {
		return false, err
	}
	s.setHead(d.ID, size, until)
	return true, nil
}

// recoverLog settles the pending batch of d, an expired log of another
// store, on behalf of a batch that met one of its claims; then it releases
// the log for the next replica that starts. Without this, the ids of a
// dead replica's last batch would wait until a new replica claims its log.
func (s *Store) recoverLog(ctx context.Context, d logDoc) error {
	_, ok, err := s.seize(ctx, d)
	if err != nil || !ok {
		return err
	}
	_, usable, err := s.settlePending(ctx, d)
	if err != nil || !usable {
		return err
	}
	return s.release(ctx, d.ID)
}

// seize makes this store the owner of d, an expired log, if no other store
// changed d since it was read.
func (s *Store) seize(ctx context.Context, d logDoc) (time.Time, bool, error) {
	until := s.cfg.Now().Add(s.cfg.LeaseTTL)
	uctx, cancel := s.opContext(ctx)
	res, err := s.updateLog(uctx,
		bson.D{{Key: "_id", Value: d.ID}, {Key: "owner", Value: d.Owner}, {Key: "expires", Value: d.Expires}, {Key: "sealed", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "owner", Value: s.owner}, {Key: "expires", Value: until}}}})
	cancel()
	if err != nil {
		return until, false, s.wrap("take over "+d.ID, err)
	}
	if res.MatchedCount == 1 {
		s.log.Info("took over log", "log", d.ID, "size", d.Committed, "previous_owner", d.Owner, "owner", s.owner)
	}
	return until, res.MatchedCount == 1, nil
}

// release gives up the lease on log at once.
func (s *Store) release(ctx context.Context, log string) error {
	uctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.updateLog(uctx,
		bson.D{{Key: "_id", Value: log}, {Key: "owner", Value: s.owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: time.Unix(0, 0).UTC()}}}})
	if err != nil {
		return s.wrap("release "+log, err)
	}
	return nil
}

// settlePending settles the batch left pending in d, a log this store owns:
// one it has just seized from a dead owner, or one it is leaving. If all
// its records are stored, it completes the batch; if none is, it drops it;
// else it seals the log at its committed size, since the missing records
// are lost and the stored ones hold their seqs. It returns the log's size and whether the log can
// take more batches.
func (s *Store) settlePending(ctx context.Context, d logDoc) (int64, bool, error) {
	p := d.Pending
	if p == nil {
		return d.Committed, true, nil
	}
	recs, err := s.recordsAt(ctx, d.ID, p.First, p.N)
	if err != nil {
		return 0, false, err
	}
	complete := int64(len(recs)) == p.N
	for _, r := range recs {
		complete = complete && r.Tok == p.Tok
	}
	switch {
	case complete:
		ok, err := s.casCommit(ctx, d.ID, p, p.First+p.N)
		if err != nil || !ok {
			return 0, false, err
		}
		s.log.Warn("completed a pending batch", "log", d.ID, "owner", d.Owner, "first", p.First, "n", p.N, "size", p.First+p.N)
		return p.First + p.N, true, nil
	case len(recs) == 0:
		// The batch's claims are left stale: the next batch that meets
		// one removes it.
		uctx, cancel := s.opContext(ctx)
		res, err := s.updateLog(uctx,
			bson.D{{Key: "_id", Value: d.ID}, {Key: "owner", Value: s.owner}, {Key: "pending.tok", Value: p.Tok}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "pending", Value: nil}}}})
		cancel()
		if err != nil {
			return 0, false, s.wrap("drop pending batch of "+d.ID, err)
		}
		if res.MatchedCount == 0 {
			return 0, false, nil
		}
		s.log.Warn("dropped a pending batch with no record stored", "log", d.ID, "owner", d.Owner, "first", p.First, "n", p.N)
		return d.Committed, true, nil
	}
	if err := s.seal(ctx, d.ID, p.Tok); err != nil {
		return 0, false, err
	}
	s.log.Warn("sealed log: a pending batch was stored in part", "log", d.ID, "owner", d.Owner, "size", p.First, "first", p.First, "n", p.N, "stored", len(recs))
	return p.First, false, nil
}

// setHead records a claimed log. The caller holds wmu.
func (s *Store) setHead(log string, committed int64, until time.Time) {
	s.head, s.committed = log, committed
	s.lmu.Lock()
	s.leaseLog, s.leaseUntil, s.leaseLost = log, until, false
	s.lmu.Unlock()
	s.noteSize(log, committed)
}

// renew extends the lease every LeaseTTL/3 until Close.
func (s *Store) renew() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.lmu.Lock()
		log, lost := s.leaseLog, s.leaseLost
		s.lmu.Unlock()
		if log == "" || lost {
			continue
		}
		until := s.cfg.Now().Add(s.cfg.LeaseTTL)
		ctx, cancel := context.WithTimeout(context.Background(), min(s.cfg.OpTimeout, s.cfg.LeaseTTL/3))
		res, err := s.updateLog(ctx,
			bson.D{{Key: "_id", Value: log}, {Key: "owner", Value: s.owner}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: until}}}})
		cancel()
		s.lmu.Lock()
		switch {
		case s.leaseLog != log:
		case err != nil:
			s.log.Warn("lease renewal failed", "log", log, "err", err)
		case res.MatchedCount == 0:
			s.leaseLost = true
			s.log.Warn("lease lost to another replica", "log", log, "owner", s.owner)
		default:
			s.leaseUntil = until
		}
		s.lmu.Unlock()
	}
}

// confirmLease renews the lease on the claimed log if this store still
// owns it, and reports whether it was lost. The caller holds wmu.
func (s *Store) confirmLease(ctx context.Context) (bool, error) {
	until := s.cfg.Now().Add(s.cfg.LeaseTTL)
	uctx, cancel := s.opContext(ctx)
	res, err := s.updateLog(uctx,
		bson.D{{Key: "_id", Value: s.head}, {Key: "owner", Value: s.owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: until}}}})
	cancel()
	if err != nil {
		return false, s.wrap("renew lease on "+s.head, err)
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if res.MatchedCount == 0 {
		s.leaseLost = true
		s.log.Warn("lease lost to another replica", "log", s.head, "owner", s.owner)
		return true, nil
	}
	if s.leaseLog == s.head && until.After(s.leaseUntil) {
		s.leaseUntil = until
	}
	return false, nil
}

// leaseOK reports whether the lease is surely still ours: renewed, and not
// within a tenth of the TTL of expiring (clock drift between replicas).
func (s *Store) leaseOK() bool {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return !s.leaseLost && s.cfg.Now().Add(s.cfg.LeaseTTL/10).Before(s.leaseUntil)
}

// updateLog updates one log document. Updates by this store are serialised:
// FerretDB v1 runs an update as read, modify, write back, so the renewer
// and the writer updating the same document at once could lose one update
// (MongoDB itself updates a document atomically).
func (s *Store) updateLog(ctx context.Context, filter, update bson.D) (*driver.UpdateResult, error) {
	s.umu.Lock()
	defer s.umu.Unlock()
	return s.logs.UpdateOne(ctx, filter, update)
}

// logNumber parses n from a log name "<prefix>-<n>" of this store's prefix.
func (s *Store) logNumber(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, s.cfg.LogPrefix+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil && n > 0 && strconv.FormatInt(n, 10) == rest
}
