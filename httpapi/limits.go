package httpapi

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/trail-audit/trail"
)

// Memory bounds the bytes that requests hold in memory at once, so that
// hostile or merely numerous clients cannot grow the process without limit
// (docs/OPERATIONS.md, "Memory"). Request bodies and read responses have
// budgets of their own, so that slow readers cannot starve producers.
type Memory struct {
	// Bodies bounds the request bodies being read or ingested, across the
	// process (default 32 MiB). A body is held until its request is
	// answered, so this also bounds the events being parsed and committed.
	// Beyond it, POST /logs answers 503 with Retry-After.
	Bodies int64
	// Reads bounds the record bytes that read responses hold, across the
	// process (default 64 MiB). Beyond it, reads answer 503 with
	// Retry-After.
	Reads int64
	// Response bounds the record bytes one read response holds (default
	// 1 MiB): a JSON page stops early and gives a next cursor; streams
	// write and flush in pages of about this size.
	Response int64
}

// DefaultMemory is what zero Memory fields take.
var DefaultMemory = Memory{Bodies: 32 << 20, Reads: 64 << 20, Response: 1 << 20}

func (m *Memory) setDefaults() {
	if m.Bodies <= 0 {
		m.Bodies = DefaultMemory.Bodies
	}
	if m.Reads <= 0 {
		m.Reads = DefaultMemory.Reads
	}
	if m.Response <= 0 {
		m.Response = DefaultMemory.Response
	}
}

// A budget counts bytes that requests hold across the process. It never
// blocks: a request that does not fit is refused, and its client retries.
type budget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes, or reports false if the budget would then hold
// more than limit.
func (b *budget) take(n, limit int64) bool {
	for {
		u := b.used.Load()
		if u+n > limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// smallHold is what a request may hold and still use a budget's reserve:
// the size of one large event.
const smallHold = 64 << 10

// A hold is what one request has taken from a budget; release gives it
// back when the request ends.
type hold struct {
	b *budget
	n int64
}

// take adds n bytes to the hold. A hold larger than smallHold must leave
// an eighth of the budget free, so that large batches or streams cannot
// starve single events and small pages.
func (h *hold) take(n int64) bool {
	limit := h.b.max
	if h.n+n > smallHold {
		limit -= h.b.max / 8
	}
	if !h.b.take(n, limit) {
		return false
	}
	h.n += n
	return true
}

func (h *hold) release() {
	h.b.used.Add(-h.n)
	h.n = 0
}

// minBodyBuffer is the first buffer readBody allocates for a body of
// unknown length: small, because a promise of bytes costs nothing to send.
const minBodyBuffer = 4 << 10

// readBody reads the whole body, up to Limits.MaxRequestBytes. Its buffer
// grows with the bytes that arrive (doubling, and never past
// Content-Length), never with what Content-Length promises, and each growth
// is taken from the body budget through h: beyond it the answer is 503.
// The caller releases h once the request is answered.
func (s *server) readBody(w http.ResponseWriter, r *http.Request, h *hold) ([]byte, error) {
	limit := s.limits.MaxRequestBytes
	tooLarge := func() error {
		return trail.Errorf(trail.ETOOLARGE, "request body is larger than the limit of %d bytes; split the batch", limit)
	}
	if r.ContentLength > limit {
		return nil, tooLarge()
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var b []byte
	for {
		if len(b) == cap(b) {
			// +1: the read that reports EOF needs room, though it fills none.
			n := min(max(2*cap(b), minBodyBuffer), int(limit)+1)
			if r.ContentLength >= 0 {
				n = min(n, int(r.ContentLength)+1)
			}
			if !h.take(int64(n - cap(b))) {
				return nil, trail.Errorf(trail.EUNAVAILABLE, "the server is reading as many request bodies as its memory budget allows (%d bytes); retry later", h.b.max)
			}
			nb := make([]byte, len(b), n)
			copy(nb, b)
			b = nb
		}
		m, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		var mbe *http.MaxBytesError
		switch {
		case err == io.EOF:
			return b, nil
		case errors.As(err, &mbe):
			return nil, tooLarge()
		case err != nil:
			return nil, trail.Errorf(trail.EINVALID, "reading the request body: %v", err)
		}
	}
}

// readsBusy is the error of a read that does not fit the read budget.
func readsBusy(h *hold) error {
	return trail.Errorf(trail.EUNAVAILABLE, "the server is serving as many reads as its memory budget allows (%d bytes); retry later", h.b.max)
}
