package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// handleCheckpointGet serves the latest signed checkpoint of a log (default:
// the one this node writes) as a signed note, verbatim.
func (s *server) handleCheckpointGet(w http.ResponseWriter, r *http.Request) {
	q, ok := s.signedQuery(w, r, "log")
	if !ok {
		return
	}
	log := s.logParam(q)
	note, _, err := s.latest(r.Context(), log)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeText(w, "no-cache", note)
}

// handleCheckpointKey serves the note verifier key that checks checkpoints.
func (s *server) handleCheckpointKey(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.signedQuery(w, r); !ok {
		return
	}
	writeText(w, "no-cache", []byte(s.ingester.Verifier()))
}

// handleProofRecord proves that a record is in its log's tree of a signed
// size: the latest checkpoint's, or ?size=N for a stored checkpoint of
// exactly N records.
func (s *server) handleProofRecord(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q, ok := s.signedQuery(w, r, "size")
	if !ok {
		return
	}
	id := r.PathValue("id")
	if err := trail.ValidateID(id); err != nil {
		s.error(w, r, err)
		return
	}
	sizeParam := q.Get("size")
	var size int64
	if sizeParam != "" {
		var err error
		if size, err = strconv.ParseInt(sizeParam, 10, 64); err != nil || size < 1 {
			s.error(w, r, trail.Errorf(trail.EINVALID, "parameter \"size\" must be a positive integer, not %q", sizeParam))
			return
		}
	}
	e, err := s.visible(ctx, id)
	if err != nil {
		s.error(w, r, err)
		return
	}

	var note []byte
	if sizeParam == "" {
		var cp trail.Checkpoint
		note, cp, err = s.latest(ctx, e.Log)
		if trail.ErrorCode(err) == trail.ENOTFOUND || err == nil && e.Seq >= cp.Size {
			err = trail.Errorf(codeNotCovered, "record %q (log %q, seq %d) is not yet covered by a signed checkpoint; retry after the next one", id, e.Log, e.Seq)
		}
		size = cp.Size
	} else {
		if e.Seq >= size {
			s.error(w, r, trail.Errorf(trail.EINVALID, "record %q has seq %d, so the tree of size %d does not hold it; ask for a size above %d, or omit size for the latest", id, e.Seq, size, e.Seq))
			return
		}
		note, err = s.store.Checkpoint(ctx, e.Log, size)
		if trail.ErrorCode(err) == trail.ENOTFOUND {
			err = trail.Errorf(trail.ENOTFOUND, "no signed checkpoint of log %q at size %d; omit size for the latest", e.Log, size)
		} else if err == nil {
			err = checkNoteSize(note, size)
		}
	}
	if err != nil {
		s.error(w, r, err)
		return
	}

	proof, err := merkle.ProveRecord(ctx, s.store, e.Log, e.Seq, size)
	if err != nil {
		s.error(w, r, fmt.Errorf("httpapi: prove record %s (log %s, seq %d) in size %d: %w", id, e.Log, e.Seq, size, err))
		return
	}
	if proof == nil {
		proof = tlog.RecordProof{} // [] rather than null for a one-record tree
	}
	cache := "no-cache"
	if sizeParam != "" {
		cache = recordCacheControl(ctx) // a fixed tree never changes
	}
	w.Header().Set("Cache-Control", cache)
	writeJSON(w, http.StatusOK, trail.RecordProof{
		ID: id, Log: e.Log, Seq: e.Seq, Size: size, LeafHash: leafHash(e), Proof: proof, Checkpoint: string(note),
	})
}

// handleProofConsistency proves that a log's tree of size from is a prefix
// of its tree of size to (default: the latest signed size).
func (s *server) handleProofConsistency(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q, ok := s.signedQuery(w, r, "log", "from", "to")
	if !ok {
		return
	}
	log := s.logParam(q)
	param := func(name string) (int64, error) {
		v := q.Get(name)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return 0, trail.Errorf(trail.EINVALID, "parameter %q must be a positive integer, not %q", name, v)
		}
		return n, nil
	}
	if q.Get("from") == "" {
		s.error(w, r, trail.Errorf(trail.EINVALID, "parameter \"from\" is required"))
		return
	}
	from, err := param("from")
	if err != nil {
		s.error(w, r, err)
		return
	}
	_, cp, err := s.latest(ctx, log)
	if err != nil {
		s.error(w, r, err)
		return
	}
	to := cp.Size
	if q.Get("to") != "" {
		if to, err = param("to"); err != nil {
			s.error(w, r, err)
			return
		}
	}
	switch {
	case from > to:
		err = trail.Errorf(trail.EINVALID, "parameter \"from\" (%d) is above \"to\" (%d)", from, to)
	case to > cp.Size:
		err = trail.Errorf(trail.EINVALID, "parameter \"to\" (%d) is above the size of the latest signed checkpoint of log %q (%d)", to, log, cp.Size)
	}
	if err != nil {
		s.error(w, r, err)
		return
	}

	proof, err := merkle.ProveTree(ctx, s.store, log, from, to)
	if err != nil {
		s.error(w, r, fmt.Errorf("httpapi: prove tree of log %s from %d to %d: %w", log, from, to, err))
		return
	}
	if proof == nil {
		proof = tlog.TreeProof{} // from == to
	}
	cache := "no-cache"
	if q.Get("to") != "" {
		cache = recordCacheControl(r.Context()) // private with auth on: audit only
	}
	w.Header().Set("Cache-Control", cache)
	writeJSON(w, http.StatusOK, trail.ConsistencyProof{Log: log, From: from, To: to, Proof: proof})
}

// signedQuery returns the request's query if it names only the known
// parameters and this server signs checkpoints; otherwise it answers with
// the error and returns false. Every checkpoint and proof handler starts so.
func (s *server) signedQuery(w http.ResponseWriter, r *http.Request, known ...string) (url.Values, bool) {
	q := r.URL.Query()
	err := checkQuery(q, known...)
	if err == nil {
		err = s.signing()
	}
	if err != nil {
		s.error(w, r, err)
		return nil, false
	}
	return q, true
}

// signing returns an ENOTFOUND error if this server signs no checkpoints.
func (s *server) signing() error {
	if s.ingester.Verifier() == "" {
		return trail.Errorf(trail.ENOTFOUND, "signing is off: this server publishes no checkpoints or proofs")
	}
	return nil
}

// logParam returns the log a request names, by default the one this node
// writes.
func (s *server) logParam(q url.Values) string {
	if log := q.Get("log"); log != "" {
		return log
	}
	return s.ingester.Head().Log
}

// latest returns the latest signed checkpoint of log, as a note and parsed.
func (s *server) latest(ctx context.Context, log string) ([]byte, trail.Checkpoint, error) {
	note, err := s.ingester.Checkpoint(ctx, log)
	if trail.ErrorCode(err) == trail.ENOTFOUND {
		return nil, trail.Checkpoint{}, trail.Errorf(trail.ENOTFOUND, "log %q has no signed checkpoint yet", log)
	} else if err != nil {
		return nil, trail.Checkpoint{}, fmt.Errorf("httpapi: latest checkpoint of %s: %w", log, err)
	}
	cp, err := trail.ParseNote(note)
	if err != nil {
		return nil, trail.Checkpoint{}, fmt.Errorf("httpapi: latest checkpoint of %s: %w", log, err)
	}
	return note, cp, nil
}

// checkNoteSize checks that a stored note is of the size it is filed under.
func checkNoteSize(note []byte, size int64) error {
	cp, err := trail.ParseNote(note)
	if err == nil && cp.Size != size {
		err = fmt.Errorf("the note has size %d", cp.Size)
	}
	if err != nil {
		return fmt.Errorf("httpapi: stored checkpoint at size %d: %w", size, err)
	}
	return nil
}

// leafHash returns an entry's stored leaf hash, or hashes its bytes if the
// store left Hashes out.
func leafHash(e *trail.Entry) tlog.Hash {
	if len(e.Hashes) > 0 {
		return e.Hashes[0]
	}
	return tlog.RecordHash(e.Bytes)
}

// checkRawQuery returns an EINVALID error if the query string does not
// decode. URL.Query drops what it cannot decode, so a broken cursor would
// silently restart paging at page 1; ServeHTTP calls this for every route.
func checkRawQuery(raw string) error {
	if _, err := url.ParseQuery(raw); err != nil {
		return trail.Errorf(trail.EINVALID, "the query string is malformed (%v); write %% as %%25 and separate parameters with &", err)
	}
	return nil
}

// checkQuery returns an EINVALID error naming any query parameter outside
// known, or any given twice.
func checkQuery(q url.Values, known ...string) error {
	var unknown []string
	for k, vs := range q {
		if !slices.Contains(known, k) {
			unknown = append(unknown, strconv.Quote(k))
		} else if len(vs) > 1 {
			return trail.Errorf(trail.EINVALID, "parameter %q is given %d times; give it once", k, len(vs))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	msg := fmt.Sprintf("unknown query parameter %s", strings.Join(unknown, ", "))
	if len(known) > 0 {
		msg += "; known: " + strings.Join(known, ", ")
	} else {
		msg += "; this endpoint takes none"
	}
	return trail.Errorf(trail.EINVALID, "%s", msg)
}

// writeText answers with a text/plain body.
func writeText(w http.ResponseWriter, cache string, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", cache)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}
