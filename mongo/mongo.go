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
//	keys        {_id: key id, name, scopes, ..., revoked, last_used, hash}: API keys (keys.go)
//	secrets     {_id: "token_secret", value}: the viewer-token secret
//
// The code inserts into records, ids and checkpoints and never updates them.
// It deletes only claims in ids whose batch never became visible and never
// will. Only the logs documents are updated, and a key's revoked (once) and
// last_used (forward) fields.
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

	lease // the claimed log's lease and the lock on log document updates

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
		if s.head != "" {
			// What the log's document has pending, if it is still ours,
			// is settled as a takeover would; if MongoDB does not answer,
			// whoever claims the log next settles it.
			_, _, err := s.settleOwn(ctx, s.head)
			if err == nil && !s.fenced {
				err = s.release(ctx, s.head)
			}
			if err != nil {
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
