// Package tail follows a log as it is written: the live tail behind
// GET /logs/stream and gRPC Tail. A Hub receives every committed batch from
// the ingester (Publish, called by the writer after each durable commit, in
// commit order) and hands it to its subscribers. A Stream (stream.go) joins
// a subscription to a catch-up read of the store, so that a subscriber that
// resumes after a cursor misses nothing and sees nothing twice.
//
// Publish never blocks and does no per-subscriber filtering: it appends the
// batch to each subscriber's bounded queue and wakes it. A subscriber whose
// queue would overflow is cut off (ErrSlow) instead of slowing ingest.
//
// A Hub sees only the commits of its own process. With several replicas
// over MongoDB, each writes a log of its own, so a stream from one replica
// follows that replica's log only (docs/API.md).
package tail

import (
	"sync"

	"github.com/trail-audit/trail"
)

// DefaultBuffer is how many committed entries a subscriber may fall behind
// before it is cut off. A commit larger than the buffer still reaches a
// subscriber that has taken everything before it.
const DefaultBuffer = 10000

// Errors that end a subscription. Both are EUNAVAILABLE: the client should
// reconnect, with its last cursor, to resume.
var (
	ErrSlow   = trail.Errorf(trail.EUNAVAILABLE, "this subscriber fell too far behind the log and was cut off; reconnect with the last event id to resume")
	ErrClosed = trail.Errorf(trail.EUNAVAILABLE, "the server is shutting down; reconnect with the last event id to resume")
)

// A Hub fans committed entries out to subscribers. The zero Hub is not
// usable; call NewHub.
type Hub struct {
	buffer int

	mu     sync.RWMutex
	subs   map[*sub]struct{}
	closed bool
}

// NewHub returns a hub whose subscribers may each fall buffer entries
// behind (DefaultBuffer if buffer <= 0).
func NewHub(buffer int) *Hub {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	return &Hub{buffer: buffer, subs: make(map[*sub]struct{})}
}

// Publish hands a committed batch to every subscriber. The ingester calls
// it after each durable commit, from its single writer, so batches arrive
// in commit order. It never blocks on a subscriber. Entries are shared, not
// copied: nobody may change them after Publish.
func (h *Hub) Publish(entries []*trail.Entry) {
	if len(entries) == 0 {
		return
	}
	var slow []*sub
	h.mu.RLock()
	for s := range h.subs {
		if !s.push(entries, h.buffer) {
			slow = append(slow, s)
		}
	}
	h.mu.RUnlock()
	if len(slow) > 0 {
		h.mu.Lock()
		for _, s := range slow {
			delete(h.subs, s)
		}
		h.mu.Unlock()
	}
}

// Subscribers returns how many subscriptions are open, for metrics.
func (h *Hub) Subscribers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs)
}

// Close ends every subscription with ErrClosed and refuses new ones, so
// that streams end when the server shuts down.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		s.end(ErrClosed)
		delete(h.subs, s)
	}
}

// subscribe opens a subscription, or returns ErrClosed.
func (h *Hub) subscribe() (*sub, error) {
	s := &sub{wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	h.subs[s] = struct{}{}
	return s, nil
}

// unsubscribe closes s; it is safe to call more than once.
func (h *Hub) unsubscribe(s *sub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// A sub is one subscription: the entries published since it opened and not
// yet taken, up to the hub's buffer, and why it ended if it did.
type sub struct {
	wake chan struct{} // has a value when queue or err changed

	// queue holds published batches as they came (one append per commit,
	// whatever its size, so that Publish stays cheap), n their entries.
	mu    sync.Mutex
	queue [][]*trail.Entry
	n     int
	err   error
}

// push queues entries, or cuts s off with ErrSlow if they do not fit. It
// reports whether s is still subscribed.
func (s *sub) push(entries []*trail.Entry, buffer int) bool {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return false
	}
	// One commit larger than the buffer may fill an empty queue, as one
	// large request may fill the ingest queue: otherwise every subscriber
	// would be cut off by it.
	if s.n > 0 && s.n+len(entries) > buffer {
		s.err = ErrSlow
		s.mu.Unlock()
		s.signal()
		return false
	}
	s.queue = append(s.queue, entries)
	s.n += len(entries)
	s.mu.Unlock()
	s.signal()
	return true
}

// end records why s ended, unless it already has.
func (s *sub) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.signal()
}

func (s *sub) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns every queued batch, and the reason s ended once the queue
// is empty. The entries queued before a cut-off are still delivered, so
// that the client's last cursor is as recent as it can be.
func (s *sub) take() ([][]*trail.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue, s.n = nil, 0
	if len(q) > 0 {
		return q, nil
	}
	return nil, s.err
}

// failed reports whether s has ended.
func (s *sub) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil
}
