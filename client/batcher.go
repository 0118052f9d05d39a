package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/trail-audit/trail"
)

// ErrBatcherClosed is returned by Batcher.Push after Close.
var ErrBatcherClosed = errors.New("trail client: batcher is closed")

// A Batcher gathers events pushed from many goroutines into batch requests:
// one round trip and one commit for many events, which is how trail reaches
// its throughput. Each Push still waits for its own receipt, so a producer
// keeps the rule "act only after the audit event is durable".
//
// A batch is atomic on the server. If it is refused because some events are
// invalid, those get their own error and the rest are sent again without
// them, so that one bad event does not fail its neighbours.
type Batcher struct {
	c       *Client
	max     int
	linger  time.Duration
	timeout time.Duration

	in       chan *pending
	mu       sync.RWMutex // guards closed against sends on in
	closed   bool
	done     chan struct{}
	inflight chan struct{} // bounds concurrent batch requests
}

type pending struct {
	e   *trail.Event
	out chan result
}

type result struct {
	r   trail.Receipt
	err error
}

// BatcherConfig tunes a Batcher. Zero fields take the defaults.
type BatcherConfig struct {
	MaxEvents   int           // events per request (default 1000)
	Linger      time.Duration // how long a batch waits to fill (default 5ms)
	MaxInFlight int           // concurrent requests (default 4)
	Timeout     time.Duration // per request, retries included (default 1m)
}

// NewBatcher returns a Batcher that pushes through c. Close it to flush.
func (c *Client) NewBatcher(cfg BatcherConfig) *Batcher {
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 1000
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	b := &Batcher{
		c: c, max: cfg.MaxEvents, linger: cfg.Linger, timeout: cfg.Timeout,
		in:       make(chan *pending, cfg.MaxEvents),
		done:     make(chan struct{}),
		inflight: make(chan struct{}, cfg.MaxInFlight),
	}
	go b.run()
	return b
}

// Push queues e for the next batch and waits for its receipt. It gives e an
// id first (if the client assigns ids), so that a retry of the batch, or of
// this Push after an error, cannot store it twice. If ctx ends first, Push
// returns ctx's error, but e may still be stored.
func (b *Batcher) Push(ctx context.Context, e *trail.Event) (trail.Receipt, error) {
	if e.ID == "" && b.c.newID != nil {
		e.ID = b.c.newID()
	}
	p := &pending{e: e, out: make(chan result, 1)}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return trail.Receipt{}, ErrBatcherClosed
	}
	select {
	case b.in <- p:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return trail.Receipt{}, ctx.Err()
	}
	select {
	case r := <-p.out:
		return r.r, r.err
	case <-ctx.Done():
		return trail.Receipt{}, ctx.Err()
	}
}

// Close sends what is queued, waits for every request, and stops.
func (b *Batcher) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.in)
	}
	b.mu.Unlock()
	<-b.done
	return nil
}

func (b *Batcher) run() {
	defer close(b.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	for first := range b.in {
		batch := []*pending{first}
		timer := time.NewTimer(b.linger)
	fill:
		for len(batch) < b.max {
			select {
			case p, ok := <-b.in:
				if !ok {
					break fill
				}
				batch = append(batch, p)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		b.inflight <- struct{}{}
		wg.Go(func() {
			defer func() { <-b.inflight }()
			b.send(batch)
		})
	}
}

// send pushes a batch and hands each event its result. Events the server
// names as invalid get their reason; the others are sent once more.
func (b *Batcher) send(batch []*pending) {
	for len(batch) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		events := make([]*trail.Event, len(batch))
		for i, p := range batch {
			events[i] = p.e
		}
		res, err := b.c.Push(ctx, events...)
		cancel()
		if err == nil {
			for i, p := range batch {
				p.out <- result{r: res.Receipts[i]}
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.Status != 400 || len(ce.Items) == 0 || len(batch) == 1 {
			for _, p := range batch {
				p.out <- result{err: err}
			}
			return
		}
		bad := make(map[int]string, len(ce.Items))
		for _, it := range ce.Items {
			bad[it.Index] = it.Reason
		}
		var rest []*pending
		for i, p := range batch {
			if reason, ok := bad[i]; ok {
				p.out <- result{err: &Error{Status: ce.Status, Title: ce.Title, Detail: reason, ProblemCode: ce.ProblemCode, RequestID: ce.RequestID}}
			} else {
				rest = append(rest, p)
			}
		}
		if len(rest) == len(batch) {
			// The server named no item of this batch; do not loop.
			for _, p := range rest {
				p.out <- result{err: fmt.Errorf("trail client: batch refused: %w", err)}
			}
			return
		}
		batch = rest
	}
}
