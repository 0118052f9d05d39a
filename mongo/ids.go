package mongo

import (
	"context"
	"errors"
	"fmt"

	trail "github.com/trail-audit/trail"
	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
)

// claimIDs is step 2. An id claimed by a committed record ends the batch
// (ErrDuplicateID naming it, which the ingester resolves); one claimed by a batch in flight elsewhere makes
// the batch wait (ErrUnavailable); a stale claim, left by a batch that was
// abandoned, is removed and claimed again.
func (s *Store) claimIDs(ctx context.Context, b *batch) error {
	docs := b.idDocs()
	for round := 0; round < 3 && len(docs) > 0; round++ {
		dups, err := s.insertMany(ctx, s.ids, docs)
		if err != nil {
			return s.wrap("claim ids", err)
		}
		if len(dups) == 0 {
			return nil
		}
		var retry []any
		var taken []string
		var busy string
		for _, i := range dups {
			d := docs[i].(idDoc)
			state, old, err := s.claimState(ctx, d.ID, true)
			if err != nil {
				return err
			}
			switch {
			case state == claimMissing:
				retry = append(retry, d)
			case old.Tok == b.tok:
				// Ours, from an earlier try of this batch.
			case state == claimLive:
				taken = append(taken, d.ID)
			case state == claimInFlight:
				busy = d.ID
			case state == claimStale:
				if err := s.dropClaim(ctx, old); err != nil {
					return err
				}
				retry = append(retry, d)
			}
		}
		if len(taken) > 0 {
			more := ""
			if len(taken) > 1 {
				more = fmt.Sprintf(" (and %d more)", len(taken)-1)
			}
			return fmt.Errorf("claim ids: id %q is already stored%s: %w", taken[0], more, trail.ErrDuplicateID)
		}
		if busy != "" {
			// Not ErrUnavailable's wrapping via s.wrap: this is no outage,
			// but it ends the batch the same way and maps to 503.
			return &claimBusyError{id: busy}
		}
		docs = retry
	}
	if len(docs) > 0 {
		return fmt.Errorf("claim ids: %d ids still contended: %w", len(docs), trail.ErrUnavailable)
	}
	return nil
}

// claimBusyError says an id is being stored by another batch right now.
type claimBusyError struct{ id string }

func (e *claimBusyError) Error() string {
	return fmt.Sprintf("claim ids: id %q is being stored by another request; retry later", e.id)
}

func (e *claimBusyError) Unwrap() error { return trail.ErrUnavailable }

// Claim states.
const (
	claimMissing  = iota // no claim (it was removed meanwhile)
	claimLive            // it names a committed record
	claimInFlight        // it names a record of a pending batch
	claimStale           // it names a batch that will never be visible
)

// claimState reads the claim on id and tells what it is worth. The order of
// reads matters: a claim is written after its batch is reserved and before
// it commits, so reading the claim and then its log cannot mistake a live
// claim for a stale one. If settleExpired is set, the batch of a claim whose
// log's lease expired is settled first (see recoverLog).
func (s *Store) claimState(ctx context.Context, id string, settleExpired bool) (int, *idDoc, error) {
	fctx, cancel := s.opContext(ctx)
	var c idDoc
	err := s.ids.FindOne(fctx, bson.D{{Key: "_id", Value: id}}).Decode(&c)
	cancel()
	if errors.Is(err, driver.ErrNoDocuments) {
		return claimMissing, nil, nil
	}
	if err != nil {
		return 0, nil, s.wrap("claim ids: read claim", err)
	}
	d, err := s.readLog(ctx, c.Log)
	if err != nil {
		return 0, nil, fmt.Errorf("claim ids: %w", err)
	}
	if d.Pending != nil && d.Pending.Tok == c.Tok {
		if !d.Expires.Before(s.cfg.Now()) || d.Owner == s.owner || !settleExpired {
			return claimInFlight, &c, nil
		}
		// The batch's owner died: settle the batch now, then look again.
		if err := s.recoverLog(ctx, *d); err != nil {
			return 0, nil, fmt.Errorf("claim ids: recover %s: %w", d.ID, err)
		}
		return s.claimState(ctx, id, false)
	}
	if c.Seq >= d.Committed {
		return claimStale, &c, nil
	}
	recs, err := s.recordsAt(ctx, c.Log, c.Seq, 1)
	if err != nil {
		return 0, nil, err
	}
	if len(recs) == 1 && recs[0].Tok == c.Tok && recs[0].EventID == c.ID {
		return claimLive, &c, nil
	}
	return claimStale, &c, nil
}

// dropClaim removes a stale claim, on condition that it is still the same.
func (s *Store) dropClaim(ctx context.Context, c *idDoc) error {
	dctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.ids.DeleteOne(dctx, bson.D{{Key: "_id", Value: c.ID}, {Key: "log", Value: c.Log}, {Key: "seq", Value: c.Seq}, {Key: "tok", Value: c.Tok}})
	if err != nil {
		return s.wrap("claim ids: drop stale claim", err)
	}
	s.log.Info("dropped stale id claim", "id", c.ID, "log", c.Log, "seq", c.Seq)
	return nil
}
