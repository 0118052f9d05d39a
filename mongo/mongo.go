// Package mongo is trail's MongoDB Store, for N stateless replicas over one
// (sharded) MongoDB cluster. Each Store claims one log through a lease and is
// its only writer; every Store reads every log.
//
// The store needs no transactions, so it also runs on FerretDB. A batch is
// made atomic by visibility: records are inserted first and become visible
// only when the log's committed size, kept in the log's document, moves past
// them. docs/SCALING.md describes the scheme and what a client sees after a
// crash mid-batch.
//
// Collections:
//
//	logs        {_id: log, owner, expires, committed, pending, sealed}: lease and head
//	records     {_id: "<log>/<seq>", log, seq, id, t, tenant, ..., b, d, h, tok}
//	ids         {_id: event id, log, seq, tok}: global id uniqueness
//	checkpoints {_id: "<log>/<size>", log, size, note}
//
// The code inserts into records, ids and checkpoints and never updates them.
// It deletes only claims in ids whose batch never became visible and never
// will. Only the logs documents are updated.
package mongo

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	trail "github.com/trail-audit/trail"
	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// Collection names.
const (
	collLogs        = "logs"
	collRecords     = "records"
	collIDs         = "ids"
	collCheckpoints = "checkpoints"
)

// Config configures Open. Only URI is required.
type Config struct {
	// URI is the MongoDB connection string. Its path names the database
	// ("mongodb://host/audit"); without one the database is "trail".
	URI string

	// LogPrefix names the logs this store creates: "<prefix>-1",
	// "<prefix>-2", ... It is 1 to 32 characters of [a-z0-9_.-], starting
	// with a letter or digit. Default "log".
	LogPrefix string

	// LeaseTTL is how long a claimed log stays owned without renewal. The
	// store renews every LeaseTTL/3 and stops writing when its lease may
	// have lapsed; another replica takes a log over once its lease expired.
	// Default 10s.
	LeaseTTL time.Duration

	// Owner names this replica in the lease documents, for operators.
	// Default "<hostname>:<pid>". A random suffix makes every Open distinct.
	Owner string

	// OpTimeout bounds each MongoDB round trip, so that calls fail with
	// ErrUnavailable in bounded time when the server is away. Default 5s.
	OpTimeout time.Duration

	// ServerSelectionTimeout bounds the wait for a usable server. Default 3s.
	ServerSelectionTimeout time.Duration

	// Logger receives lease and recovery events. Default slog.Default().
	Logger *slog.Logger

	// Now is the clock for leases. Default time.Now. Tests move it to make
	// another store's lease look expired.
	Now func() time.Time
}

var prefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`)

func (c *Config) setDefaults() error {
	if c.URI == "" {
		return errors.New("mongo: config: URI is required")
	}
	if c.LogPrefix == "" {
		c.LogPrefix = "log"
	}
	if !prefixRE.MatchString(c.LogPrefix) {
		return fmt.Errorf("mongo: config: log prefix %q: want 1-32 of [a-z0-9_.-]", c.LogPrefix)
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.LeaseTTL < 100*time.Millisecond {
		return fmt.Errorf("mongo: config: lease TTL %v is below 100ms", c.LeaseTTL)
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 5 * time.Second
	}
	if c.ServerSelectionTimeout == 0 {
		c.ServerSelectionTimeout = 3 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Store is a trail.Store on MongoDB.
type Store struct {
	cfg     Config
	client  *driver.Client
	db      *driver.Database
	logs    *driver.Collection
	records *driver.Collection
	ids     *driver.Collection
	cps     *driver.Collection
	owner   string // lease owner: cfg.Owner plus a random suffix

	// pointReads makes findByIDs query a few ids one at a time (FerretDB).
	pointReads bool
	log        *slog.Logger

	// wmu serialises the writer: Append, Head and log claims.
	wmu       sync.Mutex
	head      string // claimed log, "" if none
	committed int64  // its committed size
	fenced    bool   // another writer took head: claim a new log before writing
	inDoubt   *batch // a batch whose outcome is not known yet
	settled   *batch // the last batch stored by settling it, until the next normal commit

	// umu serialises updates of log documents; see updateLog.
	umu sync.Mutex

	// lmu guards the lease, which the renewer updates without wmu.
	lmu        sync.Mutex
	leaseLog   string
	leaseUntil time.Time // by our clock; writes stop before it
	leaseLost  bool

	// smu guards sizes, a cache of committed sizes by log. Sizes only
	// grow, so a cached size is a safe lower bound for visibility.
	smu   sync.Mutex
	sizes map[string]int64

	stop     chan struct{}
	done     chan struct{}
	closeErr error
	once     sync.Once
}

var _ trail.Store = (*Store)(nil)

// logDoc is a log's lease and head.
type logDoc struct {
	ID        string      `bson:"_id"`
	Owner     string      `bson:"owner"`
	Expires   time.Time   `bson:"expires"`
	Committed int64       `bson:"committed"`
	Pending   *pendingDoc `bson:"pending"`
	Sealed    bool        `bson:"sealed"`
	Created   time.Time   `bson:"created"`
}

// pendingDoc names the batch being written past the committed size.
type pendingDoc struct {
	First int64 `bson:"first"`
	N     int64 `bson:"n"`
	Tok   int64 `bson:"tok"`
}

// Open connects, creates the indexes and claims a log: a log whose lease
// expired (finishing or sealing its last batch), or a new one.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	cs, err := connstring.ParseAndValidate(cfg.URI)
	if err != nil {
		return nil, fmt.Errorf("mongo: open: %w", err)
	}
	dbName := cs.Database
	if dbName == "" {
		dbName = "trail"
	}
	opts := options.Client().ApplyURI(cfg.URI).
		SetAppName("trail").
		SetServerSelectionTimeout(cfg.ServerSelectionTimeout).
		SetConnectTimeout(cfg.ServerSelectionTimeout).
		SetWriteConcern(&writeconcern.WriteConcern{W: writeconcern.WCMajority, Journal: ptr(true)}).
		SetReadConcern(readconcern.Majority())
	client, err := driver.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: open: %w", err)
	}
	db := client.Database(dbName)
	s := &Store{
		cfg:     cfg,
		client:  client,
		db:      db,
		logs:    db.Collection(collLogs),
		records: db.Collection(collRecords),
		ids:     db.Collection(collIDs),
		cps:     db.Collection(collCheckpoints),
		owner:   cfg.Owner + "/" + randomHex(4),
		log:     cfg.Logger.With("component", "mongo"),
		sizes:   map[string]int64{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := s.start(ctx); err != nil {
		client.Disconnect(context.Background())
		return nil, fmt.Errorf("mongo: open: %w", err)
	}
	go s.renew()
	return s, nil
}

// start prepares the database and claims a log.
func (s *Store) start(ctx context.Context) error {
	if err := s.detectServer(ctx); err != nil {
		return err
	}
	if err := s.createIndexes(ctx); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.claim(ctx)
}

// detectServer asks the server what it is: FerretDB gets point reads.
func (s *Store) detectServer(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var info bson.M
	if err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return s.wrap("build info", err)
	}
	_, s.pointReads = info["ferretdbVersion"]
	s.log.Debug("connected", "version", info["version"], "ferretdb", info["ferretdbVersion"])
	return nil
}

// An index is one index the store needs.
type index struct {
	coll string
	name string
	keys bson.D
}

// indexes are the indexes the store creates. Records are found by _id
// "<log>/<seq>" (unique: the fencing token), by log and seq (Scan), and by
// the List filters in (t, log, seq) order. Ids are unique by their _id.
var indexes = []index{
	{collRecords, "log_seq", bson.D{{Key: "log", Value: 1}, {Key: "seq", Value: 1}}},
	{collRecords, "t_log_seq", bson.D{{Key: "t", Value: 1}, {Key: "log", Value: 1}, {Key: "seq", Value: 1}}},
	{collRecords, "tenant_t", bson.D{{Key: "tenant", Value: 1}, {Key: "t", Value: 1}, {Key: "log", Value: 1}, {Key: "seq", Value: 1}}},
	{collRecords, "actor_t", bson.D{{Key: "actor", Value: 1}, {Key: "t", Value: 1}, {Key: "log", Value: 1}, {Key: "seq", Value: 1}}},
	{collRecords, "action_t", bson.D{{Key: "action", Value: 1}, {Key: "t", Value: 1}, {Key: "log", Value: 1}, {Key: "seq", Value: 1}}},
	{collCheckpoints, "log_size", bson.D{{Key: "log", Value: 1}, {Key: "size", Value: -1}}},
}

// createIndexes creates the indexes that do not exist yet, by name.
// Creating only the missing ones keeps start-up cheap and avoids a FerretDB
// v1 crash on re-creating existing compound indexes. Replicas starting
// together may race to create one, hence the retries.
func (s *Store) createIndexes(ctx context.Context) error {
	var err error
	for try := 0; try < 3; try++ {
		if err = s.createMissingIndexes(ctx); err == nil {
			return nil
		}
	}
	return s.wrap("create indexes", err)
}

func (s *Store) createMissingIndexes(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	have := map[string]bool{}
	for _, coll := range []string{collRecords, collCheckpoints} {
		cur, err := s.db.Collection(coll).Indexes().List(ctx)
		if err != nil {
			return err
		}
		var specs []struct {
			Name string `bson:"name"`
		}
		if err := cur.All(ctx, &specs); err != nil {
			return err
		}
		for _, spec := range specs {
			have[coll+"."+spec.Name] = true
		}
	}
	for _, ix := range indexes {
		if have[ix.coll+"."+ix.name] {
			continue
		}
		_, err := s.db.Collection(ix.coll).Indexes().CreateOne(ctx,
			driver.IndexModel{Keys: ix.keys, Options: options.Index().SetName(ix.name)})
		if err != nil {
			return err
		}
	}
	return nil
}

// Head returns the claimed log and its committed size. It first settles a
// batch whose outcome was in doubt, and claims a new log if this one was
// fenced.
func (s *Store) Head(ctx context.Context) (trail.Head, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.ready(ctx); err != nil {
		return trail.Head{}, fmt.Errorf("mongo: head: %w", err)
	}
	return trail.Head{Log: s.head, Size: s.committed}, nil
}

// ready makes the writer ready to append: it settles an in-doubt batch and
// claims a log if it has none. The caller holds wmu.
func (s *Store) ready(ctx context.Context) error {
	if s.inDoubt != nil {
		if err := s.settle(ctx); err != nil {
			return err
		}
	}
	s.lmu.Lock()
	lost := s.leaseLost
	s.lmu.Unlock()
	if !lost && !s.fenced && s.head != "" && !s.leaseOK() {
		// The lease may have lapsed while this process was paused or
		// MongoDB was away, and the renewer has not run since: only the
		// log's document says whether another replica took the log over.
		// Without this, Head would report a stale size of a lost log.
		var err error
		if lost, err = s.confirmLease(ctx); err != nil {
			return err
		}
	}
	if s.fenced || lost || s.head == "" {
		if s.head != "" {
			s.log.Warn("log fenced; claiming another", "log", s.head, "owner", s.owner)
		}
		if err := s.claim(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Logs returns every log in the database with its committed size.
func (s *Store) Logs(ctx context.Context) ([]trail.Head, error) {
	docs, err := s.findLogs(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("mongo: logs: %w", err)
	}
	heads := make([]trail.Head, len(docs))
	for i, d := range docs {
		heads[i] = trail.Head{Log: d.ID, Size: d.Committed}
		s.noteSize(d.ID, d.Committed)
	}
	return heads, nil
}

// Ping reports whether MongoDB answers and this store holds a live lease.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return s.wrap("mongo: ping", err)
	}
	s.lmu.Lock()
	until, lost := s.leaseUntil, s.leaseLost
	s.lmu.Unlock()
	if !lost && !s.cfg.Now().Before(until) {
		return fmt.Errorf("mongo: ping: lease not renewed: %w", trail.ErrUnavailable)
	}
	return nil
}

// Close stops renewing, releases the lease so that another replica can take
// the log over at once, and disconnects.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.wmu.Lock()
		defer s.wmu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.OpTimeout)
		defer cancel()
		if s.inDoubt != nil {
			if err := s.settle(ctx); err != nil {
				s.log.Warn("close: in-doubt batch left for the next owner", "log", s.head, "err", err)
			}
		}
		if s.head != "" && !s.fenced {
			// A batch still pending stays in the document: whoever claims
			// the log next settles it.
			if err := s.release(ctx, s.head); err != nil {
				s.closeErr = fmt.Errorf("mongo: close: %w", err)
			}
		}
		if err := s.client.Disconnect(ctx); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("mongo: close: %w", err)
		}
	})
	return s.closeErr
}

// abandon stops the store as a crash would: no release, no settling.
func (s *Store) abandon() {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.client.Disconnect(context.Background())
	})
}

// claim takes a log for writing: the first log of this prefix whose lease
// expired and that is not sealed, else a new one. Taking over a log settles
// its pending batch; a batch that cannot be completed seals the log. The
// caller holds wmu.
func (s *Store) claim(ctx context.Context) error {
	s.head, s.committed, s.fenced, s.inDoubt, s.settled = "", 0, false, nil, nil
	for attempt := 0; attempt < 100; attempt++ {
		docs, err := s.findLogs(ctx, bson.D{})
		if err != nil {
			return fmt.Errorf("claim log: %w", err)
		}
		now := s.cfg.Now()
		last := int64(0)
		for _, d := range docs {
			n, ok := s.logNumber(d.ID)
			if !ok {
				continue
			}
			last = maxInt(last, n)
			if d.Sealed || d.Expires.After(now) {
				continue
			}
			ok, err := s.takeOver(ctx, d)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		}
		// Nothing to take over: create the next log.
		name := s.cfg.LogPrefix + "-" + strconv.FormatInt(last+1, 10)
		until := s.cfg.Now().Add(s.cfg.LeaseTTL)
		ictx, cancel := s.opContext(ctx)
		_, err = s.logs.InsertOne(ictx, logDoc{ID: name, Owner: s.owner, Expires: until, Created: now.UTC()})
		cancel()
		if driver.IsDuplicateKeyError(err) {
			continue // another replica created it first
		}
		if err != nil {
			return s.wrap("claim log: create", err)
		}
		s.setHead(name, 0, until)
		s.log.Info("created log", "log", name, "owner", s.owner)
		return nil
	}
	return fmt.Errorf("claim log: too many concurrent claims: %w", trail.ErrUnavailable)
}

// takeOver claims the expired log d for writing, after settling its
// pending batch. It reports false if another replica won the log or the log
// had to be sealed.
func (s *Store) takeOver(ctx context.Context, d logDoc) (bool, error) {
	until, ok, err := s.seize(ctx, d)
	if err != nil || !ok {
		return false, err
	}
	size, usable, err := s.settlePending(ctx, d)
	if err != nil || !usable {
		return false, err
	}
	s.setHead(d.ID, size, until)
	return true, nil
}

// recoverLog settles the pending batch of d, an expired log of another
// store, on behalf of a batch that met one of its claims; then it releases
// the log for the next replica that starts. Without this, the ids of a
// dead replica's last batch would wait until a new replica claims its log.
func (s *Store) recoverLog(ctx context.Context, d logDoc) error {
	_, ok, err := s.seize(ctx, d)
	if err != nil || !ok {
		return err
	}
	_, usable, err := s.settlePending(ctx, d)
	if err != nil || !usable {
		return err
	}
	return s.release(ctx, d.ID)
}

// seize makes this store the owner of d, an expired log, if no other store
// changed d since it was read.
func (s *Store) seize(ctx context.Context, d logDoc) (time.Time, bool, error) {
	until := s.cfg.Now().Add(s.cfg.LeaseTTL)
	uctx, cancel := s.opContext(ctx)
	res, err := s.updateLog(uctx,
		bson.D{{Key: "_id", Value: d.ID}, {Key: "owner", Value: d.Owner}, {Key: "expires", Value: d.Expires}, {Key: "sealed", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "owner", Value: s.owner}, {Key: "expires", Value: until}}}})
	cancel()
	if err != nil {
		return until, false, s.wrap("take over "+d.ID, err)
	}
	if res.MatchedCount == 1 {
		s.log.Info("took over log", "log", d.ID, "size", d.Committed, "previous_owner", d.Owner, "owner", s.owner)
	}
	return until, res.MatchedCount == 1, nil
}

// release gives up the lease on log at once.
func (s *Store) release(ctx context.Context, log string) error {
	uctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.updateLog(uctx,
		bson.D{{Key: "_id", Value: log}, {Key: "owner", Value: s.owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: time.Unix(0, 0).UTC()}}}})
	if err != nil {
		return s.wrap("release "+log, err)
	}
	return nil
}

// settlePending settles the batch that the previous owner of d, a log this
// store has just seized, left pending. If all its records are stored, it
// completes the batch; if none is, it drops it; else it seals the log at
// its committed size, since the missing records are lost and the stored
// ones hold their seqs. It returns the log's size and whether the log can
// take more batches.
func (s *Store) settlePending(ctx context.Context, d logDoc) (int64, bool, error) {
	p := d.Pending
	if p == nil {
		return d.Committed, true, nil
	}
	recs, err := s.recordsAt(ctx, d.ID, p.First, p.N)
	if err != nil {
		return 0, false, err
	}
	complete := int64(len(recs)) == p.N
	for _, r := range recs {
		complete = complete && r.Tok == p.Tok
	}
	switch {
	case complete:
		ok, err := s.casCommit(ctx, d.ID, p, p.First+p.N)
		if err != nil || !ok {
			return 0, false, err
		}
		s.log.Warn("completed the batch of a dead owner", "log", d.ID, "first", p.First, "n", p.N, "size", p.First+p.N)
		return p.First + p.N, true, nil
	case len(recs) == 0:
		// The batch's claims are left stale: the next batch that meets
		// one removes it.
		uctx, cancel := s.opContext(ctx)
		res, err := s.updateLog(uctx,
			bson.D{{Key: "_id", Value: d.ID}, {Key: "owner", Value: s.owner}, {Key: "pending.tok", Value: p.Tok}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "pending", Value: nil}}}})
		cancel()
		if err != nil {
			return 0, false, s.wrap("drop pending batch of "+d.ID, err)
		}
		if res.MatchedCount == 0 {
			return 0, false, nil
		}
		s.log.Warn("dropped the unwritten batch of a dead owner", "log", d.ID, "first", p.First, "n", p.N)
		return d.Committed, true, nil
	}
	if err := s.seal(ctx, d.ID, p.Tok); err != nil {
		return 0, false, err
	}
	s.log.Warn("sealed log: its owner died mid-batch", "log", d.ID, "size", p.First, "first", p.First, "n", p.N, "stored", len(recs))
	return p.First, false, nil
}

// setHead records a claimed log. The caller holds wmu.
func (s *Store) setHead(log string, committed int64, until time.Time) {
	s.head, s.committed = log, committed
	s.lmu.Lock()
	s.leaseLog, s.leaseUntil, s.leaseLost = log, until, false
	s.lmu.Unlock()
	s.noteSize(log, committed)
}

// renew extends the lease every LeaseTTL/3 until Close.
func (s *Store) renew() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.lmu.Lock()
		log, lost := s.leaseLog, s.leaseLost
		s.lmu.Unlock()
		if log == "" || lost {
			continue
		}
		until := s.cfg.Now().Add(s.cfg.LeaseTTL)
		ctx, cancel := context.WithTimeout(context.Background(), min(s.cfg.OpTimeout, s.cfg.LeaseTTL/3))
		res, err := s.updateLog(ctx,
			bson.D{{Key: "_id", Value: log}, {Key: "owner", Value: s.owner}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: until}}}})
		cancel()
		s.lmu.Lock()
		switch {
		case s.leaseLog != log:
		case err != nil:
			s.log.Warn("lease renewal failed", "log", log, "err", err)
		case res.MatchedCount == 0:
			s.leaseLost = true
			s.log.Warn("lease lost to another replica", "log", log, "owner", s.owner)
		default:
			s.leaseUntil = until
		}
		s.lmu.Unlock()
	}
}

// confirmLease renews the lease on the claimed log if this store still
// owns it, and reports whether it was lost. The caller holds wmu.
func (s *Store) confirmLease(ctx context.Context) (bool, error) {
	until := s.cfg.Now().Add(s.cfg.LeaseTTL)
	uctx, cancel := s.opContext(ctx)
	res, err := s.updateLog(uctx,
		bson.D{{Key: "_id", Value: s.head}, {Key: "owner", Value: s.owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: until}}}})
	cancel()
	if err != nil {
		return false, s.wrap("renew lease on "+s.head, err)
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if res.MatchedCount == 0 {
		s.leaseLost = true
		s.log.Warn("lease lost to another replica", "log", s.head, "owner", s.owner)
		return true, nil
	}
	if s.leaseLog == s.head && until.After(s.leaseUntil) {
		s.leaseUntil = until
	}
	return false, nil
}

// leaseOK reports whether the lease is surely still ours: renewed, and not
// within a tenth of the TTL of expiring (clock drift between replicas).
func (s *Store) leaseOK() bool {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return !s.leaseLost && s.cfg.Now().Add(s.cfg.LeaseTTL/10).Before(s.leaseUntil)
}

// updateLog updates one log document. Updates by this store are serialised:
// FerretDB v1 runs an update as read, modify, write back, so the renewer
// and the writer updating the same document at once could lose one update
// (MongoDB itself updates a document atomically).
func (s *Store) updateLog(ctx context.Context, filter, update bson.D) (*driver.UpdateResult, error) {
	s.umu.Lock()
	defer s.umu.Unlock()
	return s.logs.UpdateOne(ctx, filter, update)
}

// findLogs returns the log documents that match filter, by name.
func (s *Store) findLogs(ctx context.Context, filter bson.D) ([]logDoc, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.logs.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, s.wrap("find logs", err)
	}
	var docs []logDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, s.wrap("find logs", err)
	}
	return docs, nil
}

// logDoc reads one log's document.
func (s *Store) readLog(ctx context.Context, log string) (*logDoc, error) {
	docs, err := s.findLogs(ctx, bson.D{{Key: "_id", Value: log}})
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("log %q has no document", log)
	}
	s.noteSize(log, docs[0].Committed)
	return &docs[0], nil
}

// logNumber parses n from a log name "<prefix>-<n>" of this store's prefix.
func (s *Store) logNumber(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, s.cfg.LogPrefix+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil && n > 0 && strconv.FormatInt(n, 10) == rest
}

// noteSize caches a committed size; sizes only grow.
func (s *Store) noteSize(log string, size int64) {
	s.smu.Lock()
	if size > s.sizes[log] {
		s.sizes[log] = size
	}
	s.smu.Unlock()
}

// sizesFor returns the committed sizes of logs, reading from MongoDB the
// logs whose cached size is not above need[log] (the highest seq the caller
// wants to see).
func (s *Store) sizesFor(ctx context.Context, need map[string]int64) (map[string]int64, error) {
	out := make(map[string]int64, len(need))
	var stale bson.A
	s.smu.Lock()
	for log, seq := range need {
		out[log] = s.sizes[log]
		if out[log] <= seq {
			stale = append(stale, log)
		}
	}
	s.smu.Unlock()
	if len(stale) == 0 {
		return out, nil
	}
	docs, err := s.findLogs(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: stale}}}})
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		s.noteSize(d.ID, d.Committed)
		out[d.ID] = max(out[d.ID], d.Committed)
	}
	return out, nil
}

// opContext bounds one round trip.
func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.OpTimeout)
}

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

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// randomTok returns a positive random batch token.
func randomTok() int64 {
	var b [8]byte
	rand.Read(b[:])
	return int64(binary.BigEndian.Uint64(b[:]) >> 1)
}

func ptr[T any](v T) *T { return &v }

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
