package httpapi

import (
	"math"
	"net/http"
	"strconv"

	"github.com/trail-audit/trail"
)

// handleExport streams a log's records with from <= seq < to in seq order,
// verbatim, one a line, after a header line that names the range and
// carries the latest signed checkpoint. to defaults to that checkpoint's
// size, so that the default export is exactly what the checkpoint covers;
// to=end takes every record stored when the export began. It is what
// "trail export" saves and "trail verify" audits.
func (s *server) handleExport(w http.ResponseWriter, r *http.Request) {
	hdr, err := s.exportRange(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	s.writeExport(w, r, hdr)
}

// exportRange resolves an export's query to its header: the log, the seq
// range and the latest signed checkpoint, if any.
func (s *server) exportRange(r *http.Request) (trail.ExportHeader, error) {
	q := r.URL.Query()
	if err := checkQuery(q, "log", "from", "to"); err != nil {
		return trail.ExportHeader{}, err
	}
	hdr := trail.ExportHeader{Format: 1, Log: s.logParam(q)}
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return hdr, trail.Errorf(trail.EINVALID, "parameter \"from\" must be a seq (an integer from 0), not %q", v)
		}
		hdr.From = n
	}
	size, err := s.logSize(r, hdr.Log)
	if err != nil {
		return hdr, err
	}
	var note []byte
	var cp trail.Checkpoint
	if s.signing() == nil {
		note, cp, err = s.latest(r.Context(), hdr.Log)
		if trail.ErrorCode(err) == trail.ENOTFOUND && q.Get("to") != "" {
			note, err = nil, nil // an explicit range needs no checkpoint
		}
		if err != nil {
			return hdr, err
		}
	}
	hdr.Checkpoint = string(note)
	hdr.To = size
	switch v := q.Get("to"); {
	case v == "end":
	case v == "" && s.signing() == nil:
		hdr.To = cp.Size
	case v != "":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return hdr, trail.Errorf(trail.EINVALID, "parameter \"to\" must be a size (an integer from 0) or \"end\", not %q", v)
		}
		hdr.To = n
	}
	switch {
	case hdr.To > size:
		return hdr, trail.Errorf(trail.EINVALID, "parameter \"to\" (%d) is above the size of log %q (%d)", hdr.To, hdr.Log, size)
	case hdr.From > hdr.To:
		return hdr, trail.Errorf(trail.EINVALID, "parameter \"from\" (%d) is above \"to\" (%d)", hdr.From, hdr.To)
	}
	return hdr, nil
}

// logSize returns the end of log as stored: one past its highest stored
// seq. That is normally the size the store reports, but a row written
// behind the writer's back (a forged append) lies beyond it, and an export
// of "every stored record" must show it to the auditor.
func (s *server) logSize(r *http.Request, log string) (int64, error) {
	ctx := r.Context()
	size, found := int64(0), false
	// The written log first: it exists even before its first record.
	if h := s.ingester.Head(); h.Log == log {
		size, found = h.Size, true
	} else {
		logs, err := s.store.Logs(ctx)
		if err != nil {
			return 0, err
		}
		for _, h := range logs {
			if h.Log == log {
				size, found = h.Size, true
			}
		}
	}
	// Normally an empty range read on the (log, seq) key.
	err := s.store.Scan(ctx, log, size, math.MaxInt64, func(e *trail.Entry) error {
		size, found = e.Seq+1, true
		return nil
	})
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, trail.Errorf(trail.ENOTFOUND, "no log is named %q", log)
	}
	return size, nil
}
