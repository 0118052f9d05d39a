// Package ingest is trail's write path: group commit. Requests queue in a
// bounded, in-process queue; one writer per log takes every request waiting,
// resolves idempotency, assigns dense seqs, computes the Merkle hashes and
// appends the whole group to the store in one durable commit. Each request
// is answered only after that commit returns. A signer (signer.go) signs
// and stores checkpoints off that path.
//
// Idempotency is decided in one place, plan (plan.go): the writer looks
// up the group's client ids in the store, and plan makes each event a
// replay (same id, same digest: the original receipt), a conflict (same
// id, other content: 409 for its request) or a new entry. The store's
// unique id is only the last line of defence: if another replica stored an
// id between the lookup and the append, the store refuses the whole batch
// with trail.ErrDuplicateID and the writer looks up and plans again, up to
// three times, and then answers 503 with nothing stored. No store error
// becomes a 409.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Config tunes an Ingester. Zero fields take the defaults.
type Config struct {
	MaxBatch    int           // events in one commit (default 8192); one larger request commits alone
	MaxWait     time.Duration // how long a commit waits for more requests (default 0: take what is queued)
	QueueEvents int           // events queued before Submit answers EUNAVAILABLE (default 65536)
	QueueBytes  int64         // bytes of records queued before Submit answers EUNAVAILABLE (default 64 MiB)

	// StoreTimeout bounds every store call of the writer and the
	// checkpointer (default 30s), so that a store that hangs without
	// failing answers 503 instead of stalling the log. It exceeds the
	// several round trips of one MongoDB append, each bounded by OpTimeout.
	StoreTimeout time.Duration

	// Signer signs checkpoints; nil turns checkpoints off. Verifier is its
	// verifier key, used to check the stored checkpoint at start-up.
	Signer             note.Signer
	Verifier           string
	Origin             string        // checkpoint origin prefix; the log name is appended (default "trail.local")
	CheckpointInterval time.Duration // at most one checkpoint per interval (default 1s)

	// Committed, if set, is given every batch of entries after its durable
	// commit, in commit order, by the single writer. It must not block or
	// change the entries: the live tail's hub (tail.Hub.Publish) takes it.
	Committed func([]*trail.Entry)

	Now    func() time.Time
	NewID  func() string // ids for events that have none (default UUIDv7)
	Logger *slog.Logger

	// Observer is told of commits, failed store calls and stored
	// checkpoints, for metrics (default: nobody).
	Observer Observer

	// Set only by this package's tests (export_test.go) and read once by
	// New, so that no test switch branches the write path.
	newTree     func(size int64, r tlog.HashReader) hasher // default merkle.NewTree
	noFinalSign bool                                       // Close leaves the log as a crash would
}

func (c *Config) setDefaults() {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 8192
	}
	if c.QueueEvents <= 0 {
		c.QueueEvents = 65536
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 64 << 20
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 30 * time.Second
	}
	if c.Origin == "" {
		c.Origin = "trail.local"
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewID == nil {
		c.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.newTree == nil {
		c.newTree = func(size int64, r tlog.HashReader) hasher { return merkle.NewTree(size, r) }
	}
}

// An Ingester is the single writer of one log. It implements trail.Ingester.
// It admits requests (Submit), hands them to its writer goroutine
// (writer.go) and leaves checkpoints to its signer (signer.go).
type Ingester struct {
	cfg   Config
	store trail.Store

	queue       chan *request
	queued      atomic.Int64 // events admitted and not yet answered
	queuedBytes atomic.Int64 // the bytes of their records (Prepared.Size)
	mu          sync.RWMutex // guards closed against sends
	closed      bool
	stop        chan struct{}
	done        chan struct{} // closed when the writer has stopped

	// downUntil (unix nanoseconds) is set when a commit found the store
	// unreachable: until then requests get 503 at once instead of queueing
	// behind commits that would wait out the store's timeouts too.
	downUntil atomic.Int64

	// refused, when set, is why writes are refused (a failed integrity
	// check, or a log lost to another writer). It holds an error.
	refused atomic.Pointer[error]

	// failed, when set, is why the last commit attempt stored nothing
	// (a full disk, a store down); a commit that succeeds, or a ping of
	// the store by Ready, clears it.
	failed atomic.Pointer[error]

	head atomic.Pointer[trail.Head] // committed head, for readers
	w    writer                     // owned by the writer goroutine
	sign *signer
}

type request struct {
	preps []*trail.Prepared
	bytes int64 // the records' size, counted in queuedBytes
	resp  chan response
}

type response struct {
	res *trail.Result
	err error
}

// New opens the log that store appends to, checks its integrity against the
// latest signed checkpoint, and starts the writer. A failed check does not
// fail New: the ingester refuses writes and says why (Ready, Submit), so
// that reads and verification keep working while an operator investigates.
func New(ctx context.Context, store trail.Store, cfg Config) (*Ingester, error) {
	cfg.setDefaults()
	in := &Ingester{
		cfg:   cfg,
		store: store,
		queue: make(chan *request, cfg.QueueEvents),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	in.sign = newSigner(cfg, store, in.stop, in.Head)
	if err := in.load(ctx); err != nil {
		return nil, err
	}
	in.sign.start()
	go in.run()
	return in, nil
}

// load reads the head of the store's log, rebuilds the tree and, with a
// signer, checks the log against its latest checkpoint.
func (in *Ingester) load(ctx context.Context) error {
	h, err := in.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("ingest: head: %w", err)
	}
	in.w.log = h.Log
	in.w.tree = in.cfg.newTree(h.Size, in.hashReader(h.Log))
	in.head.Store(&h)
	in.sign.reset(nil)
	if in.cfg.Signer == nil {
		return nil
	}
	note, err := in.store.Checkpoint(ctx, h.Log, -1)
	if err != nil && !errors.Is(err, trail.ErrNotFound) {
		return fmt.Errorf("ingest: latest checkpoint: %w", err)
	}
	if _, err := checkLog(ctx, in.store, h, note, in.cfg.Verifier, in.sign.origin(h.Log)); err != nil {
		in.refuse(fmt.Errorf("log %q failed its integrity check at start-up: %w; writes are refused until an operator investigates (run `trail verify`, see docs/VERIFYING.md)", h.Log, err))
		return nil
	}
	in.sign.reset(note)
	return nil
}

// storeContext bounds one store call of the writer.
func (in *Ingester) storeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), in.cfg.StoreTimeout)
}

// hashReader reads the stored hashes of log for the writer's tree, each
// read bounded like every other store call of the writer.
func (in *Ingester) hashReader(log string) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		ctx, cancel := in.storeContext()
		defer cancel()
		return in.store.ReadHashes(ctx, log, indexes)
	})
}

func (in *Ingester) refuse(err error) {
	in.cfg.Logger.Error("trail: writes refused", "reason", err.Error())
	in.refused.Store(&err)
}

// Submit implements trail.Ingester.
func (in *Ingester) Submit(ctx context.Context, events []*trail.Event) (*trail.Result, error) {
	if len(events) == 0 {
		return nil, trail.Errorf(trail.EINVALID, "batch is empty; send at least one event")
	}
	if p := in.refused.Load(); p != nil {
		return nil, trail.Errorf(trail.EUNAVAILABLE, "writes are refused: %v", *p)
	}
	now := in.cfg.Now()
	if err := in.storeDown(now); err != nil {
		return nil, err
	}
	preps := make([]*trail.Prepared, len(events))
	for i, e := range events {
		p, err := trail.Prepare(e, now, in.cfg.NewID)
		if err != nil {
			return nil, err
		}
		preps[i] = p
	}
	req := &request{preps: preps, resp: make(chan response, 1)}
	if err := in.admit(req); err != nil {
		return nil, err
	}
	in.mu.RLock()
	if in.closed {
		in.mu.RUnlock()
		in.unqueue(int64(len(preps)), req.bytes)
		return nil, trail.Errorf(trail.EUNAVAILABLE, "the server is shutting down; retry on another replica or later")
	}
	in.queue <- req // never blocks: the queue holds QueueEvents requests and each has an event
	in.mu.RUnlock()

	select {
	case r := <-req.resp:
		return r.res, r.err
	case <-ctx.Done():
		// The commit may still happen; a retry with the same ids is safe.
		return nil, ctx.Err()
	}
}

// admit counts req into the queue, or refuses it with EUNAVAILABLE if the
// queue would then hold more than QueueEvents events or QueueBytes bytes.
// One request larger than either may still use an empty queue.
func (in *Ingester) admit(req *request) error {
	n := int64(len(req.preps))
	for _, p := range req.preps {
		req.bytes += int64(p.Size())
	}
	q, qb := in.queued.Add(n), in.queuedBytes.Add(req.bytes)
	if q == n || q <= int64(in.cfg.QueueEvents) && qb <= in.cfg.QueueBytes {
		return nil
	}
	in.unqueue(n, req.bytes)
	return trail.Errorf(trail.EUNAVAILABLE, "the ingest queue is full (%d events or %d bytes waiting at most); retry later", in.cfg.QueueEvents, in.cfg.QueueBytes)
}

// unqueue takes answered or refused events out of the queue's counts.
func (in *Ingester) unqueue(events, bytes int64) {
	in.queued.Add(-events)
	in.queuedBytes.Add(-bytes)
}

// outageHold is how long requests are refused at once after a commit
// found the store unreachable. It matches the Retry-After the API sends.
const outageHold = time.Second

// storeDown returns an EUNAVAILABLE error while an outage hold lasts.
func (in *Ingester) storeDown(now time.Time) error {
	if now.UnixNano() < in.downUntil.Load() {
		return trail.Errorf(trail.EUNAVAILABLE, "the store could not be reached a moment ago and nothing was stored; retry with the same ids")
	}
	return nil
}

// Ready implements trail.Ingester.
func (in *Ingester) Ready(ctx context.Context) error {
	if p := in.refused.Load(); p != nil {
		return trail.Errorf(trail.EUNAVAILABLE, "writes are refused: %v", *p)
	}
	in.mu.RLock()
	closed := in.closed
	in.mu.RUnlock()
	if closed {
		return trail.Errorf(trail.EUNAVAILABLE, "the server is shutting down")
	}
	if p := in.failed.Load(); p != nil {
		// Without traffic no commit would clear it: ask the store.
		if err := in.store.Ping(ctx); err != nil {
			return fmt.Errorf("%w: %w", trail.Errorf(trail.EUNAVAILABLE, "the last commit failed and the store still does not take writes"), err)
		}
		in.failed.CompareAndSwap(p, nil)
	}
	return nil
}

// Head returns the log this ingester writes and its committed size.
func (in *Ingester) Head() trail.Head { return *in.head.Load() }

// Verifier returns the checkpoint verifier key, or "" if signing is off.
func (in *Ingester) Verifier() string { return in.cfg.Verifier }

// Checkpoint returns the latest signed checkpoint note of log.
func (in *Ingester) Checkpoint(ctx context.Context, log string) ([]byte, error) {
	return in.sign.latestNote(ctx, log)
}

// Close stops taking requests, commits everything queued, writes a final
// checkpoint and stops. It does not close the store.
func (in *Ingester) Close(ctx context.Context) error {
	in.mu.Lock()
	if !in.closed {
		in.closed = true
		close(in.stop)
	}
	in.mu.Unlock()
	select {
	case <-in.done:
	case <-ctx.Done():
		return fmt.Errorf("ingest: close: %w", ctx.Err())
	}
	return in.sign.wait(ctx)
}
