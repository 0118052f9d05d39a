// Package tail follows a log as it is written: the live tail behind
// GET /logs/stream and gRPC Tail. A Hub receives every committed batch from
// the ingester (Publish, called by the writer after each durable commit, in
// commit order) and hands it to its subscribers. A Stream (stream.go) joins
// a subscription to a catch-up read of the store, so that a subscriber that
// resumes after a cursor misses nothing and sees nothing twice.
//
// Publish never blocks and does no per-subscriber filtering: it appends the
// batch to each subscriber's queue, bounded in bytes, and wakes it. A
// subscriber whose queue would overflow is cut off (ErrSlow) instead of
// slowing ingest. Each open stream reserves its share of a memory budget
// (Config), so that many followers cannot hold more than it together.
//
// A Hub sees only the commits of its own process. With several replicas
// over MongoDB, each writes a log of its own, so a stream from one replica
// follows that replica's log only (docs/API.md).
package tail

import (
	"sync"

	"github.com/trail-audit/trail"
)

// Config bounds what the live tail holds in memory (docs/OPERATIONS.md,
// "Memory"). Sizes count record bytes, as the HTTP API's budgets do.
type Config struct {
	// QueueBytes bounds the records a subscriber may fall behind before it
	// is cut off (default 4 MiB). A commit larger than it still reaches a
	// subscriber that has taken everything before it.
	QueueBytes int64
	// PageBytes bounds one catch-up read of the store and what one Next
	// returns (default 1 MiB), as the HTTP API's page budget bounds a page.
	PageBytes int64
	// Memory bounds what the open streams reserve together (default 128
	// MiB). Each reserves QueueBytes and twice PageBytes (a page and the
	// caller's encoded copy of it); beyond it, Follow returns an
	// EUNAVAILABLE error and the client retries later.
	Memory int64
}

// DefaultConfig is what zero Config fields take.
var DefaultConfig = Config{QueueBytes: 4 << 20, PageBytes: 1 << 20, Memory: 128 << 20}

// reservation is what one stream takes from Memory.
func (c *Config) reservation() int64 { return c.QueueBytes + 2*c.PageBytes }

// Errors that end a subscription. Both are EUNAVAILABLE: the client should
// reconnect, with its last cursor, to resume.
var (
	ErrSlow   = trail.Errorf(trail.EUNAVAILABLE, "this subscriber fell too far behind the log and was cut off; reconnect with the last event id to resume")
	ErrClosed = trail.Errorf(trail.EUNAVAILABLE, "the server is shutting down; reconnect with the last event id to resume")
)

// A Hub fans committed entries out to subscribers. The zero Hub is not
// usable; call NewHub.
type Hub struct {
	cfg Config

	mu       sync.RWMutex
	subs     map[*sub]struct{}
	reserved int64 // by open streams, of cfg.Memory
	closed   bool
}

// NewHub returns a hub bounded by cfg; zero fields take DefaultConfig's.
func NewHub(cfg Config) *Hub {
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultConfig.QueueBytes
	}
	if cfg.PageBytes <= 0 {
		cfg.PageBytes = DefaultConfig.PageBytes
	}
	if cfg.Memory <= 0 {
		cfg.Memory = DefaultConfig.Memory
	}
	return &Hub{cfg: cfg, subs: make(map[*sub]struct{})}
}

// Publish hands a committed batch to every subscriber. The ingester calls
// it after each durable commit, from its single writer, so batches arrive
// in commit order. It never blocks on a subscriber. Entries are shared, not
// copied: nobody may change them after Publish.
func (h *Hub) Publish(entries []*trail.Entry) {
	if len(entries) == 0 {
		return
	}
	size := entryBytes(entries)
	var slow []*sub
	h.mu.RLock()
	for s := range h.subs {
		if !s.push(entries, size, h.cfg.QueueBytes) {
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

// reserve takes one stream's share of the memory budget, or returns an
// EUNAVAILABLE error if it does not fit.
func (h *Hub) reserve() (int64, error) {
	n := h.cfg.reservation()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, ErrClosed
	}
	if h.reserved+n > h.cfg.Memory {
		return 0, trail.Errorf(trail.EUNAVAILABLE, "the server follows as many live streams as its memory budget allows (%d bytes); retry later", h.cfg.Memory)
	}
	h.reserved += n
	return n, nil
}

// release gives back what reserve took.
func (h *Hub) release(n int64) {
	h.mu.Lock()
	h.reserved -= n
	h.mu.Unlock()
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
// yet taken, up to the hub's QueueBytes, and why it ended if it did.
type sub struct {
	wake chan struct{} // has a value when queue or err changed

	// queue holds published batches as they came (one append per commit,
	// whatever its size, so that Publish stays cheap), n their bytes.
	mu    sync.Mutex
	queue []batch
	n     int64
	err   error
}

// A batch is one commit's entries and their record bytes.
type batch struct {
	entries []*trail.Entry
	size    int64
}

// entryBytes is the size of the entries' record bytes.
func entryBytes(entries []*trail.Entry) int64 {
	var n int64
	for _, e := range entries {
		n += int64(len(e.Bytes))
	}
	return n
}

// push queues entries of size bytes, or cuts s off with ErrSlow if they do
// not fit in limit. It reports whether s is still subscribed.
func (s *sub) push(entries []*trail.Entry, size, limit int64) bool {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return false
	}
	// One commit larger than the limit may fill an empty queue, as one
	// large request may fill the ingest queue: otherwise every subscriber
	// would be cut off by it. Its entries are shared, not copied.
	if len(s.queue) > 0 && s.n+size > limit {
		s.err = ErrSlow
		s.mu.Unlock()
		s.signal()
		return false
	}
	s.queue = append(s.queue, batch{entries, size})
	s.n += size
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

// take returns the oldest queued entries, as many as fit in max bytes (at
// least one), and the reason s ended once the queue is empty. A commit
// larger than max is taken in parts. The entries queued before a cut-off
// are still delivered, so that the client's last cursor is as recent as it
// can be.
func (s *sub) take(max int64) ([][]*trail.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return nil, s.err
	}
	var out [][]*trail.Entry
	var size int64
	for len(s.queue) > 0 {
		b := &s.queue[0]
		k := 0
		for ; k < len(b.entries); k++ {
			n := int64(len(b.entries[k].Bytes))
			if size > 0 && size+n > max {
				break
			}
			size += n
		}
		if k > 0 {
			out = append(out, b.entries[:k])
		}
		if k < len(b.entries) {
			b.entries, b.size = b.entries[k:], b.size-entryBytes(b.entries[:k])
			break
		}
		s.queue[0] = batch{} // let the taken entries go once they are sent
		s.queue = s.queue[1:]
	}
	s.n -= size
	if len(s.queue) > 0 {
		s.signal() // more to take
	}
	return out, nil
}

// failed reports whether s has ended.
func (s *sub) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil
}
