package mongo

import (
	"context"
	"errors"
	"fmt"

	trail "github.com/trail-audit/trail"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// wrap prefixes err with the operation and marks the errors that mean
// "MongoDB cannot be reached now" as trail.ErrUnavailable.
func (s *Store) wrap(op string, err error) error {
	if isUnavailable(err) {
		return fmt.Errorf("%s: %w (%w)", op, trail.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isUnavailable reports whether err means the server could not be reached
// or could not answer in time, so that a retry later may succeed.
func isUnavailable(err error) bool {
	var sse topology.ServerSelectionError
	var le driver.LabeledError
	switch {
	case err == nil:
		return false
	case errors.Is(err, context.DeadlineExceeded), driver.IsTimeout(err), driver.IsNetworkError(err),
		errors.As(err, &sse), errors.Is(err, driver.ErrClientDisconnected):
		return true
	case errors.As(err, &le) && (le.HasErrorLabel("RetryableWriteError") || le.HasErrorLabel("TransientTransactionError")):
		return true
	}
	// A write concern error leaves the write's durability unknown.
	var bwe driver.BulkWriteException
	var we driver.WriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError != nil || errors.As(err, &we) && we.WriteConcernError != nil {
		return true
	}
	var ce driver.CommandError
	if errors.As(err, &ce) {
		// NotWritablePrimary, PrimarySteppedDown, ShutdownInProgress and
		// friends: a failover or a shutdown is under way.
		for _, c := range []int32{6, 7, 89, 91, 189, 10107, 11600, 11602, 13435, 13436} {
			if ce.Code == c {
				return true
			}
		}
	}
	return false
}
