// Package seglog is trail's embedded, log-structured store. The log is
// authoritative: append-only segment files hold each record's bytes, its
// idempotency digest and the Merkle hashes its append created, framed with
// a length and a CRC-32C. An Append is one write and one fdatasync. The
// indexes (the id index for Get and Lookup, one row per record, and List's
// query index, blocks of query columns with a summary each, blocks.go) are
// derived: a background indexer writes them to an unsynced SQLite file in
// large batches, with a watermark, and Open re-indexes whatever lies past
// it. Records not yet indexed stay visible from an in-memory tail, so that
// nothing acknowledged is ever invisible, to Get, Lookup or List.
//
// What cannot be rebuilt from the log, checkpoints and API keys, lives in
// a small SQLite file with synchronous=FULL (state.db).
//
// Once a segment is sealed, a background goroutine writes a compressed
// copy of it to a new file (.segz: chunks of about 16 KiB of whole frames,
// each compressed with S2 and followed by its CRC-32C, and a table of
// chunks; segz.go and codec.go),
// syncs it, renames it into place, and only then removes the segment: no
// byte of a sealed segment is rewritten in place. Offsets in the index
// stay offsets in the uncompressed segment; a read decompresses the one
// chunk that holds the frame, and the frame's CRC is checked as before.
//
// Layout of the directory:
//
//	log/00000000000000000000.segz  sealed segments, compressed, named by their first seq
//	log/00000000000000000123.seg   the active segment; sealed ones not yet compressed
//	log/*.segz.tmp                 a compression under way; removed at open
//	index/index.db                 the derived index; delete it to rebuild
//	index/ids.filter               a Bloom filter of the ids, derived too
//	state.db                       log name, checkpoints, keys
package seglog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trail-audit/trail"
)

// Config configures a Store.
type Config struct {
	// Dir is the data directory. It is created if need be.
	Dir string

	// Log is the name of the log; default "main". It is fixed when the
	// directory is created.
	Log string

	// SegmentBytes is the size at which the active segment is sealed and
	// a new one begun; default 64 MiB.
	SegmentBytes int64

	// KeepUncompressed leaves sealed segments as they are, rather than
	// compress them (compress.go); a directory may hold both kinds.
	KeepUncompressed bool

	// Logger receives what the store's background work cannot return to
	// a caller: a sealed segment that failed to compress. Default: none.
	Logger *slog.Logger

	// IndexInterval is how long the indexer waits to gather a batch once
	// records are pending; default 20ms. List never lags (it reads the
	// unindexed tail from memory); this bounds the memory of that tail.
	IndexInterval time.Duration

	// Migrating opens the directory although it still holds the SQLite
	// file of the layout before (LegacyFile): trail migrate fills the
	// store from it, and renames it last.
	Migrating bool
}

// DefaultLog is the log name of a Config without one.
const DefaultLog = "main"

// LegacyFile is the file of the SQLite-only layout that came before.
const LegacyFile = "trail.db"

// ErrLegacy is returned by Open for a directory of the SQLite-only layout,
// which `trail migrate` converts.
var ErrLegacy = errors.New("the data directory holds a store of the SQLite-only layout (" + LegacyFile + ")")

// Store is a trail.Store over a directory of segments.
type Store struct {
	cfg Config
	log string

	size    atomic.Int64 // records in the log: the next seq
	indexed atomic.Int64 // the watermark: records below it are indexed

	segMu sync.RWMutex
	segs  []*segment

	chunks    *chunkCache   // decompressed chunks of compressed segments
	sealed    chan struct{} // wakes the compressor
	zMu       sync.Mutex
	zErr      error         // the compressor's last error
	zFailures atomic.Uint64 // compressions that failed since Open

	mu     sync.Mutex // the writer: guards what follows
	w      *os.File   // the active segment, append-only
	wsize  int64      // its valid length
	buf    []byte
	broken error // set when a failed write could not be undone
	closed bool

	tail tail

	ixMu  sync.Mutex
	ixErr error // the indexer's last error, until it succeeds again

	state *state
	ix    *index

	ids      *idFilter   // the id hashes of every record, once idsReady
	idsReady atomic.Bool // false while ids is rebuilt from the index
	idsMark  int64       // the mark of the filter file; the indexer's
	bg       sync.WaitGroup

	wake    chan struct{}
	flush   chan struct{} // ends the indexer's wait for a batch
	stop    chan struct{}
	stopped chan struct{}
}

var _ trail.Store = (*Store)(nil)

// Open opens the store in cfg.Dir, creating it if need be, recovers a torn
// tail, and indexes what the index lacks before it returns.
func Open(cfg Config) (*Store, error) {
	if cfg.Log == "" {
		cfg.Log = DefaultLog
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = 64 << 20
	}
	if cfg.IndexInterval <= 0 {
		cfg.IndexInterval = 20 * time.Millisecond
	}
	if cfg.Dir == "" {
		return nil, errors.New("seglog: open: Config.Dir is empty")
	}
	if err := trail.ValidateID(cfg.Log); err != nil {
		return nil, fmt.Errorf("seglog: open %s: log name %q: %s", cfg.Dir, cfg.Log, trail.ErrorMessage(err))
	}
	s := &Store{cfg: cfg, log: cfg.Log, wake: make(chan struct{}, 1), flush: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
		chunks: newChunkCache(chunkCacheBytes), sealed: make(chan struct{}, 1)}
	s.tail.ids = make(map[string]*tailEntry)
	if err := s.open(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("seglog: open %s: %w", cfg.Dir, err)
	}
	go s.indexLoop()
	if !cfg.KeepUncompressed {
		s.bg.Add(1)
		go s.compressLoop()
	}
	return s, nil
}

func (s *Store) open() error {
	logDir := filepath.Join(s.cfg.Dir, "log")
	if _, err := os.Stat(filepath.Join(s.cfg.Dir, LegacyFile)); err == nil && !s.cfg.Migrating {
		return ErrLegacy
	}
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return err
	}
	var err error
	if s.state, err = openState(filepath.Join(s.cfg.Dir, "state.db"), s.log); err != nil {
		return err
	}
	if err := s.openLog(logDir); err != nil {
		return err
	}
	if s.ix, err = openIndex(filepath.Join(s.cfg.Dir, "index"), s.log, s.size.Load()); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	s.indexed.Store(s.ix.watermark)
	s.tail.start = s.ix.watermark
	if err := s.refillBlock(); errors.As(err, new(misplaced)) {
		if err := s.rebuildIndex(err); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("index: reading back the records of the block being filled: %w", err)
	}
	if err := s.catchUp(); err != nil {
		return err
	}
	s.loadIDs()
	return nil
}

// openLog lists the segments, recovers the active one's tail and opens it
// for appending.
func (s *Store) openLog(dir string) error {
	segs, lastSealed, err := listSegments(dir, s.chunks)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		segs = []*segment{{first: 0, path: filepath.Join(dir, segName(0))}}
		if s.w, err = createFile(segs[0].path); err != nil {
			return err
		}
		s.segs = segs
		return nil
	}
	last := segs[len(segs)-1]
	if lastSealed {
		// A crash between sealing a segment and creating the next.
		next, _, err := last.seal()
		if err != nil {
			return err
		}
		g := &segment{first: next, path: filepath.Join(dir, segName(next))}
		if s.w, err = createFile(g.path); err != nil {
			return err
		}
		s.segs = append(segs, g)
		s.size.Store(next)
		return nil
	}
	next, size, _, err := recoverTail(last.path, last.first)
	if err != nil {
		return err
	}
	if s.w, err = os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		return err
	}
	s.segs, s.wsize = segs, size
	s.size.Store(next)
	return nil
}

// segments returns the current list of segments.
func (s *Store) segments() []*segment {
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	return s.segs
}

// segmentFor returns the index in segs of the segment that holds seq.
func segmentFor(segs []*segment, seq int64) int {
	return sort.Search(len(segs), func(i int) bool { return segs[i].first > seq }) - 1
}

// Head returns the store's log and its size.
func (s *Store) Head(ctx context.Context) (trail.Head, error) {
	return trail.Head{Log: s.log, Size: s.size.Load()}, nil
}

// Logs returns the store's one log and its size.
func (s *Store) Logs(ctx context.Context) ([]trail.Head, error) {
	return []trail.Head{{Log: s.log, Size: s.size.Load()}}, nil
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.cfg.Dir }

// Ping checks that the state file can be written, and that no failed write
// has left the log unwritable.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.Lock()
	broken, closed := s.broken, s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("seglog: ping: %w", errClosed)
	}
	if broken != nil {
		return fmt.Errorf("seglog: ping: %w: %v", trail.ErrUnavailable, broken)
	}
	if err := s.IndexErr(); err != nil && s.tail.len() >= maxTail {
		return fmt.Errorf("seglog: ping: %w: the indexer fails: %v", trail.ErrUnavailable, err)
	}
	if err := s.state.ping(ctx); err != nil {
		return fmt.Errorf("seglog: ping: %w: %v", trail.ErrUnavailable, err)
	}
	return nil
}

var errClosed = errors.New("store is closed")

// Close stops the indexer, after it has indexed what it holds, and closes
// the files.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	s.bg.Wait()
	if err := s.closeFiles(); err != nil {
		return fmt.Errorf("seglog: close: %w", err)
	}
	return nil
}

func (s *Store) closeFiles() error {
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	for _, g := range s.segs {
		errs = append(errs, g.close())
	}
	if s.ix != nil {
		errs = append(errs, s.ix.close())
	}
	if s.state != nil {
		errs = append(errs, s.state.close())
	}
	return errors.Join(errs...)
}
