package metrics

import (
	"context"
	"errors"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// Reader wraps r so that its failed calls count in trail_store_errors_total
// (op "get", "list", ...). Not-found answers and calls whose caller went
// away are not failures of the store. Methods trail.Reader gains later
// pass through uncounted until they are added here.
func (m *Metrics) Reader(r trail.Reader) trail.Reader { return &reader{Reader: r, m: m} }

type reader struct {
	trail.Reader
	m *Metrics
}

func (r *reader) count(ctx context.Context, op string, err error) error {
	if err != nil && !errors.Is(err, trail.ErrNotFound) && trail.ErrorCode(err) != trail.ENOTFOUND && ctx.Err() == nil {
		r.m.StoreFailed(op)
	}
	return err
}

func (r *reader) Lookup(ctx context.Context, ids []string) (map[string]*trail.Entry, error) {
	m, err := r.Reader.Lookup(ctx, ids)
	return m, r.count(ctx, "lookup", err)
}

func (r *reader) Get(ctx context.Context, id string) (*trail.Entry, error) {
	e, err := r.Reader.Get(ctx, id)
	return e, r.count(ctx, "get", err)
}

func (r *reader) List(ctx context.Context, f *trail.Filter) ([]*trail.Entry, error) {
	es, err := r.Reader.List(ctx, f)
	return es, r.count(ctx, "list", err)
}

func (r *reader) Scan(ctx context.Context, log string, from, to int64, fn func(*trail.Entry) error) error {
	var fnErr error
	err := r.Reader.Scan(ctx, log, from, to, func(e *trail.Entry) error {
		fnErr = fn(e)
		return fnErr
	})
	return r.countScan(ctx, err, fnErr)
}

// ScanRaw passes trail.RawScanner through, so that an export over the
// metrics wrapper does not parse every record.
func (r *reader) ScanRaw(ctx context.Context, log string, from, to int64, fn func(seq int64, b []byte) error) error {
	var fnErr error
	err := trail.ScanRaw(ctx, r.Reader, log, from, to, func(seq int64, b []byte) error {
		fnErr = fn(seq, b)
		return fnErr
	})
	return r.countScan(ctx, err, fnErr)
}

// countScan counts a scan's error, unless it is the caller's own.
func (r *reader) countScan(ctx context.Context, err, fnErr error) error {
	if err != nil && errors.Is(err, fnErr) {
		return err // the caller's own error, not the store's
	}
	return r.count(ctx, "scan", err)
}

func (r *reader) ReadHashes(ctx context.Context, log string, indexes []int64) ([]tlog.Hash, error) {
	hs, err := r.Reader.ReadHashes(ctx, log, indexes)
	return hs, r.count(ctx, "read_hashes", err)
}

func (r *reader) Checkpoint(ctx context.Context, log string, size int64) ([]byte, error) {
	b, err := r.Reader.Checkpoint(ctx, log, size)
	return b, r.count(ctx, "checkpoint", err)
}

func (r *reader) Logs(ctx context.Context) ([]trail.Head, error) {
	hs, err := r.Reader.Logs(ctx)
	return hs, r.count(ctx, "logs", err)
}

func (r *reader) Ping(ctx context.Context) error {
	return r.count(ctx, "ping", r.Reader.Ping(ctx))
}
