// Package testserver starts a real trail server for tests, the way
// cmd/trail serve builds one: a store (a SQLite file in a temporary
// directory, or a fresh database on the MongoDB test server), a signing
// key, and the node of internal/node, served by httptest on loopback.
package testserver

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
	"github.com/trail-audit/trail/httpapi"
	"github.com/trail-audit/trail/ingest"
	"github.com/trail-audit/trail/internal/node"
	"github.com/trail-audit/trail/internal/testmongo"
	"github.com/trail-audit/trail/merkle"
	"github.com/trail-audit/trail/mongo"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/sqlite"
	"github.com/trail-audit/trail/tail"
	"github.com/trail-audit/trail/ui"
)

// Origin is the checkpoint origin prefix and signing key name of every test
// server.
const Origin = "trail.test"

// Config varies the test server. The zero Config is a signing server over
// SQLite.
type Config struct {
	Backend            string           // "sqlite" (default), "seglog" or "mongo"
	Limits             trail.Limits     // per request; zero fields take the defaults
	Memory             httpapi.Memory   // zero fields take the defaults
	CheckpointInterval time.Duration    // default 5ms
	NoSigning          bool             // no signer: signing is off
	KeyFile            string           // the signing key, created if missing; default one of the server's own
	LeaseTTL           time.Duration    // mongo only; default mongo's
	Now                func() time.Time // mongo only: the lease clock; default time.Now

	// WrapReader, if set, wraps the store the API reads, so that a test can
	// put faults in the read path.
	WrapReader func(trail.Reader) trail.Reader
	// WrapHandler, if set, wraps the API's handler, so that a test can put
	// faults in front of it.
	WrapHandler func(http.Handler) http.Handler

	Logger *slog.Logger // default: discard

	// Tail and Heartbeat tune the live tail (node.Config); zero takes the
	// defaults.
	Tail      tail.Config
	Heartbeat time.Duration

	// Auth turns authentication on (node.Config.Auth); nil leaves it off.
	Auth *auth.Config
	// UI serves the viewer at /ui/ (node.Config.UI); nil leaves it off.
	UI *ui.Config
	// URI is the mongo backend's database; default a fresh one. Servers
	// given one URI are replicas over one database.
	URI string
}

// A Server is a running test server.
type Server struct {
	*httptest.Server
	Store    trail.Store
	Path     string // the SQLite file, with the sqlite backend
	URI      string // the MongoDB database, with the mongo backend
	Ingester *ingest.Ingester
	Verifier string // "" if signing is off
	Log      string // the log the server writes
	Keys     *auth.Manager
	Tail     *tail.Hub // the live tail's hub
}

// MustOpen starts a test server and closes it, ingester and store, when the
// test ends.
func MustOpen(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	dir := tb.TempDir()
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{}
	s.Store, s.Path, s.URI = mustOpenStore(tb, dir, cfg)
	nc := node.Config{
		Ingest: ingest.Config{CheckpointInterval: cfg.CheckpointInterval, Origin: Origin},
		Limits: cfg.Limits,
		Memory: cfg.Memory,
		Logger: logger,
		Auth:   cfg.Auth,

		Tail:      cfg.Tail,
		Heartbeat: cfg.Heartbeat,
		UI:        cfg.UI,
	}
	if nc.Ingest.CheckpointInterval == 0 {
		nc.Ingest.CheckpointInterval = 5 * time.Millisecond
	}
	if !cfg.NoSigning {
		keyFile := cfg.KeyFile
		if keyFile == "" {
			keyFile = filepath.Join(dir, "trail.key")
		}
		signer, vkey, err := merkle.LoadOrCreateKey(keyFile, Origin)
		if err != nil {
			tb.Fatalf("LoadOrCreateKey: %v", err)
		}
		nc.Ingest.Signer, nc.Ingest.Verifier, s.Verifier = signer, vkey, vkey
	}
	if cfg.WrapReader != nil {
		nc.Reader = cfg.WrapReader(s.Store)
	}
	n, err := node.New(context.Background(), s.Store, nc)
	if err != nil {
		s.Store.Close()
		tb.Fatalf("node.New: %v", err)
	}
	s.Ingester, s.Log, s.Keys, s.Tail = n.Ingester, n.Ingester.Head().Log, n.Keys, n.Tail
	h := n.Handler
	if cfg.WrapHandler != nil {
		h = cfg.WrapHandler(h)
	}
	// HTTP/1.1 and h2c, as trail serve: gRPC clients speak HTTP/2.
	s.Server = httptest.NewUnstartedServer(h)
	s.Server.Config.Protocols = node.Protocols()
	s.Server.Start()
	tb.Cleanup(func() {
		// The order of serve's shutdown: HTTP (open streams end first, as
		// serve's Shutdown ends them), then the node, then the store.
		n.Tail.Close()
		s.Server.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			tb.Errorf("node Close: %v", err)
		}
		if err := s.Store.Close(); err != nil {
			tb.Errorf("store Close: %v", err)
		}
	})
	return s
}

// mustOpenStore opens the backend's store in dir or in a fresh database,
// and returns it with the SQLite file's path or the database's URI.
func mustOpenStore(tb testing.TB, dir string, cfg Config) (st trail.Store, path, uri string) {
	tb.Helper()
	switch cfg.Backend {
	case "", "sqlite":
		path = filepath.Join(dir, "trail.db")
		st, err := sqlite.Open(sqlite.Config{Path: path, Log: "main"})
		if err != nil {
			tb.Fatalf("open sqlite store: %v", err)
		}
		return st, path, ""
	case "seglog":
		st, err := seglog.Open(seglog.Config{Dir: dir})
		if err != nil {
			tb.Fatalf("open seglog store: %v", err)
		}
		return st, "", ""
	case "mongo":
		uri = cfg.URI
		if uri == "" {
			uri = testmongo.DatabaseURI(tb)
		}
		st, err := mongo.Open(context.Background(), mongo.Config{
			URI: uri, LeaseTTL: cfg.LeaseTTL, Now: cfg.Now, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			tb.Fatalf("open mongo store: %v", err)
		}
		return st, "", uri
	}
	tb.Fatalf("testserver: unknown backend %q", cfg.Backend)
	return nil, "", ""
}
