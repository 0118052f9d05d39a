package tail

import (
	"context"
	"errors"
	"time"

	"github.com/trail-audit/trail"
)

// catchUpPage is the most seqs one catch-up read of the store covers, so
// that no read holds the store while a slow client is written to.
const catchUpPage = 1000

// firstRecord is the record size a stream assumes before it has read one:
// a large event's, so that its first catch-up read stays near PageBytes.
const firstRecord = 65 << 10

// errPageFull stops a catch-up Scan once its page holds PageBytes.
var errPageFull = errors.New("tail: page full")

// Source is what a stream reads besides the hub: the store, for catching
// up, and the head of the log this process writes.
type Source struct {
	Reader trail.Reader
	Head   func() trail.Head // the ingester's Head: it MUST NOT touch the store
}

// A Stream is one follower of the log: the records that match its filter,
// in commit order, first from the store after a cursor (catch-up), then
// live from the hub, with no gap and no repeat between the two. It is used
// by one goroutine.
type Stream struct {
	hub    *Hub
	src    Source
	filter trail.Filter
	sub    *sub

	log  string // the log followed
	next int64  // the seq of log to deliver next; later live entries below it are repeats
	end  int64  // catch-up reads the store up to here; then live

	page   int64 // Config.PageBytes
	record int64 // bytes assumed per record, to size a catch-up read
	held   int64 // reserved of the hub's Memory, until Close
}

// Follow opens a stream of the records that match f. With after == nil it
// starts with the next commit; otherwise it resumes just after the record
// at after (its Log and Seq; Time is ignored), reading what the store holds
// since then before going live. After must name the log this process
// writes: a hub sees no other log's commits (EINVALID otherwise). The
// filter's paging fields (After, Desc, Limit, MaxBytes) are ignored. A
// stream that does not fit the hub's memory budget is refused with an
// EUNAVAILABLE error; Close gives its share back.
func (h *Hub) Follow(src Source, f *trail.Filter, after *trail.Cursor) (*Stream, error) {
	held, err := h.reserve()
	if err != nil {
		return nil, err
	}
	st := &Stream{hub: h, src: src, filter: *f, page: h.cfg.PageBytes, record: firstRecord, held: held}
	st.filter.After, st.filter.Desc, st.filter.Limit, st.filter.MaxBytes = nil, false, 0, 0
	if err := st.subscribe(); err != nil {
		st.Close()
		return nil, err
	}
	head := src.Head()
	st.log, st.next = head.Log, head.Size // live only: start at the next commit
	if after != nil {
		if after.Log != head.Log {
			st.Close()
			return nil, trail.Errorf(trail.EINVALID, "the cursor is a position in log %q, but this server writes and streams log %q; resume with GET /logs?cursor=… or from a replica that writes log %q", after.Log, head.Log, after.Log)
		}
		st.next = after.Seq + 1
	}
	return st, nil
}

// subscribe opens a fresh subscription and sets the end of the catch-up
// to the committed size of the log read after it: every commit below that
// size is in the store, and every later one reaches the subscription.
func (st *Stream) subscribe() error {
	s, err := st.hub.subscribe()
	if err != nil {
		return err
	}
	st.sub = s
	st.end = st.src.Head().Size
	return nil
}

// Position returns the stream's place in its log: just after the last
// record it delivered or passed over, or where it started. Resuming after
// it (Follow's after) misses nothing. Its Time is zero: it is a position
// in commit order, for Follow only. It is nil while nothing of the log is
// behind the stream (an empty log), since a cursor's seq is never negative.
func (st *Stream) Position() *trail.Cursor {
	if st.next <= 0 {
		return nil
	}
	return &trail.Cursor{Log: st.log, Seq: st.next - 1}
}

// Close ends the stream's subscription and gives back its share of the
// hub's memory budget. It is safe to call more than once.
func (st *Stream) Close() {
	if st.sub != nil {
		st.hub.unsubscribe(st.sub)
	}
	if st.held > 0 {
		st.hub.release(st.held)
		st.held = 0
	}
}

// Next returns the next records that match, in commit order, about
// PageBytes of them at most. It waits at
// most wait for one (returning none and no error when wait passes, so that
// the caller can send a heartbeat), and returns ctx's error when ctx ends,
// ErrSlow when the subscriber fell QueueBytes behind the log, and
// ErrClosed when the hub closed.
//
// Until the stream is live (a call of Next found the catch-up done), an
// overflow of its buffer is not final: the store holds what it missed, so
// it reads on from there. Once live, an overflow ends it with ErrSlow.
func (st *Stream) Next(ctx context.Context, wait time.Duration) ([]*trail.Entry, error) {
	deadline := time.Now().Add(wait)
	for st.next < st.end {
		out, err := st.catchUp(ctx)
		if len(out) > 0 || err != nil {
			return out, err
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
	}
	if st.sub.failed() && st.catchingUp() {
		// The subscription overflowed while the store was read; the store
		// has what it missed, so read on from there rather than cut off.
		st.hub.unsubscribe(st.sub)
		if err := st.subscribe(); err != nil {
			return nil, err
		}
		return st.Next(ctx, time.Until(deadline))
	}
	return st.live(ctx, deadline)
}

// catchingUp reports whether the stream has not yet delivered a live entry.
func (st *Stream) catchingUp() bool { return st.end >= 0 }

// catchUp reads the next page of the log from the store and returns what
// matches. The page ends once its matches hold PageBytes, and the read
// covers as many seqs as PageBytes would hold at twice the largest record
// of the last read, so that a store that reads ahead reads little more.
func (st *Stream) catchUp(ctx context.Context) ([]*trail.Entry, error) {
	to := min(st.end, st.next+min(max(st.page/st.record, 1), catchUpPage))
	var out []*trail.Entry
	var size, largest int64
	next := to
	err := st.src.Reader.Scan(ctx, st.log, st.next, to, func(e *trail.Entry) error {
		largest = max(largest, int64(len(e.Bytes)))
		if !st.filter.Matches(&e.Record) {
			return nil
		}
		out = append(out, e)
		if size += int64(len(e.Bytes)); size >= st.page {
			next = e.Seq + 1
			return errPageFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errPageFull) {
		return nil, err
	}
	if largest > 0 {
		st.record = 2 * largest
	}
	st.next = next
	return out, nil
}

// live returns the next matching entries the hub publishes, waiting until
// deadline.
func (st *Stream) live(ctx context.Context, deadline time.Time) ([]*trail.Entry, error) {
	st.end = -1 // live from now on: a cut-off is final
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		batches, err := st.sub.take(st.page)
		if err != nil {
			return nil, err
		}
		var out []*trail.Entry
		for _, batch := range batches {
			for _, e := range batch {
				if e.Log != st.log || e.Seq < st.next {
					continue // caught up from the store already, or another log
				}
				st.next = e.Seq + 1
				if st.filter.Matches(&e.Record) {
					out = append(out, e)
				}
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-st.sub.wake:
		case <-t.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
