package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/ingest"
	"github.com/trail-audit/trail/internal/node"
	"github.com/trail-audit/trail/merkle"
	"github.com/trail-audit/trail/mongo"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/sqlite"
	"github.com/trail-audit/trail/ui"
)

// A server is one run of trail serve: open acquires everything, run serves
// until the context ends, and close releases whatever open acquired, in
// order. A nil field was not acquired, so close needs no flags.
type server struct {
	cfg    *serveConfig
	logger *slog.Logger
	stdout io.Writer

	ln         net.Listener
	stop       context.CancelFunc // ends the service's own context
	store      trail.Store
	closeStore func() error
	verifier   string
	node       *node.Node
	http       *http.Server
	debug      *http.Server
	metrics    *http.Server
}

// serve runs the service until ctx is done, then shuts it down gracefully.
func serve(ctx context.Context, cfg *serveConfig, logger *slog.Logger, stdout io.Writer) (err error) {
	s := &server{cfg: cfg, logger: logger, stdout: stdout}
	defer func() {
		// On an early return too: still commit what was accepted.
		cctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		if cerr := s.close(cctx); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := s.open(ctx); err != nil {
		return err
	}
	return s.run(ctx)
}

// open listens, opens the store, loads the signing key, starts the node
// and the debug and metrics servers.
func (s *server) open(ctx context.Context) error {
	cfg := s.cfg
	// Listen first: a busy port is the likeliest mistake, and it should
	// fail before anything is created on disk.
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("serve: %s is in use by another process: stop it, or choose another address with --addr (TRAIL_ADDR)", cfg.addr)
		}
		return fmt.Errorf("serve: listen on %s: %w; check --addr (TRAIL_ADDR)", cfg.addr, err)
	}
	s.ln = newLimitListener(ln, cfg.limits.maxConnections)

	// The service runs on a context of its own: the writer and the lease
	// must outlive the signal until close has drained them.
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop

	// A certificate that does not load fails before anything is created.
	tlsConfig, err := startTLS(life, &cfg.tls, s.logger)
	if err != nil {
		return err
	}
	if s.store, s.closeStore, err = openStore(life, cfg, s.logger); err != nil {
		return err
	}
	signer, verifier, err := merkle.LoadOrCreateKey(cfg.keyFile, cfg.origin)
	if err != nil {
		return fmt.Errorf("serve: signing key: %w (set --key-file, or fix the file's permissions)", err)
	}
	s.verifier = verifier
	authCfg, err := authConfig(life, cfg, ln.Addr(), s.store, s.logger)
	if err != nil {
		return err
	}
	s.node, err = node.New(life, s.store, node.Config{
		Auth: authCfg,
		Ingest: ingest.Config{
			MaxBatch:           cfg.commitMaxEvents,
			MaxWait:            cfg.commitMaxWait,
			QueueEvents:        cfg.queueEvents,
			QueueBytes:         int64(cfg.limits.queueBytes),
			Signer:             signer,
			Verifier:           verifier,
			Origin:             cfg.origin,
			CheckpointInterval: cfg.checkpointInterval,
		},
		Limits: trail.Limits{
			MaxEventBytes:   int(cfg.maxEventBytes),
			MaxRequestBytes: int64(cfg.maxRequestBytes),
			MaxBatchEvents:  cfg.maxBatchEvents,
		},
		Memory: cfg.limits.memory(),
		Tail:   cfg.limits.tail(),
		Logger: s.logger,
		UI:     cfg.uiConfig(),
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.http = &http.Server{
		Handler:           s.node.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		// A 10 MiB body from a slow producer must still arrive; answers
		// have no write timeout, because NDJSON streams of a large query
		// legitimately take long.
		ReadTimeout:    2 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		TLSConfig:      tlsConfig,
		Protocols:      node.Protocols(), // h2c: gRPC on the plaintext port too
	}
	// Live-tail streams never end by themselves: end them when Shutdown
	// starts, so that it waits only for requests that do.
	s.http.RegisterOnShutdown(s.node.Tail.Close)
	return s.openPrivate()
}

// openPrivate starts the listeners apart from the API's that the flags
// ask for: profiles (--debug-addr) and metrics (--metrics-addr).
func (s *server) openPrivate() error {
	var err error
	if s.cfg.debugAddr != "" {
		if s.debug, err = serveDebug(s.cfg.debugAddr, s.logger); err != nil {
			return err
		}
	}
	if s.cfg.metricsAddr != "" {
		if s.metrics, err = serveMetrics(s.cfg.metricsAddr, s.node.Metrics.Handler(), s.logger); err != nil {
			return err
		}
	}
	return nil
}

// run serves the API until ctx is done or serving fails.
func (s *server) run(ctx context.Context) error {
	go releaseMemory(ctx, 5*time.Second, 32<<20)

	// Take the scheme before serving: http.Server.Serve gives a server
	// without TLS a TLSConfig of its own (for HTTP/2 upgrades).
	url := baseURL(s.ln, s.http.TLSConfig)
	served := make(chan error, 1)
	go func() { served <- serveHTTP(s.http, s.ln) }()

	head := s.node.Ingester.Head()
	s.logger.Info("trail: serving", "url", url, "store", storeName(s.cfg.store), "log", head.Log, "size", head.Size,
		"verifier_key", s.verifier, "version", versionString())
	fmt.Fprintf(s.stdout, "listening on %s\n", url)

	select {
	case <-ctx.Done():
		s.logger.Info("trail: shutting down", "reason", context.Cause(ctx))
		return nil
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
}

// close releases what open acquired, in this order: the HTTP server stops
// accepting and lets requests in flight finish (each is answered only
// after its commit, so this also waits for their commits); the node
// commits anything still queued and signs a final checkpoint; then the
// debug server, the store and the listener close. It returns the first
// error that loses data or leaves the store open.
func (s *server) close(ctx context.Context) error {
	var err error
	if s.http != nil {
		if serr := s.http.Shutdown(ctx); serr != nil {
			s.logger.Warn("trail: requests still running at the shutdown timeout; closing their connections", "err", serr)
			s.http.Close()
		}
	}
	if s.node != nil {
		if err = s.node.Close(ctx); err != nil {
			err = fmt.Errorf("serve: shutdown: %w", err)
		} else {
			head := s.node.Ingester.Head()
			s.logger.Info("trail: stopped", "log", head.Log, "size", head.Size)
		}
	}
	if s.debug != nil {
		s.debug.Close()
	}
	if s.metrics != nil {
		s.metrics.Close()
	}
	if s.closeStore != nil {
		if cerr := s.closeStore(); cerr != nil && err == nil {
			err = fmt.Errorf("serve: close store: %w", cerr)
		}
	}
	if s.stop != nil {
		s.stop()
	}
	if s.ln != nil {
		s.ln.Close()
	}
	return err
}

// openStore opens the configured store and returns it with the function
// that closes it.
func openStore(ctx context.Context, cfg *serveConfig, logger *slog.Logger) (trail.Store, func() error, error) {
	if isMongoURI(cfg.store) {
		mc := mongo.Config{URI: cfg.store, LeaseTTL: cfg.leaseTTL, Logger: logger}
		if cfg.logSet {
			mc.LogPrefix = cfg.log
		}
		s, err := mongo.Open(ctx, mc)
		if err != nil {
			return nil, nil, fmt.Errorf("serve: open MongoDB store %s: %w; check --store (TRAIL_STORE) and that MongoDB is up", storeName(cfg.store), err)
		}
		return s, s.Close, nil
	}
	if err := os.MkdirAll(cfg.data, 0o700); err != nil {
		return nil, nil, fmt.Errorf("serve: create data directory: %w; choose another with --data (TRAIL_DATA)", err)
	}
	if err := checkDataDir(cfg.data); err != nil {
		return nil, nil, err
	}
	unlock, err := lockDir(cfg.data)
	if err != nil {
		return nil, nil, err
	}
	s, err := openEmbedded(cfg, logger)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return s, func() error {
		defer unlock()
		return s.Close()
	}, nil
}

// openEmbedded opens the embedded store in cfg.data: the log-structured
// store, or with --store sqlite the SQLite file of earlier versions. A
// directory of the SQLite layout is not opened as the new store: it must be
// migrated first, and the error says how.
func openEmbedded(cfg *serveConfig, logger *slog.Logger) (trail.Store, error) {
	if cfg.store == "sqlite" {
		path := filepath.Join(cfg.data, seglog.LegacyFile)
		s, err := sqlite.Open(sqlite.Config{Path: path, Log: cfg.log})
		if err != nil {
			return nil, fmt.Errorf("serve: open embedded store %s: %w", path, err)
		}
		return s, nil
	}
	s, err := seglog.Open(seglog.Config{Dir: cfg.data, Log: cfg.log, SegmentBytes: int64(cfg.segmentSize), KeepUncompressed: !cfg.compressSegments, Logger: logger})
	if errors.Is(err, seglog.ErrLegacy) {
		return nil, fmt.Errorf("serve: %s holds a store of the SQLite layout of earlier versions (%s); convert it with `trail migrate --data %s`, or keep serving it with --store sqlite", cfg.data, seglog.LegacyFile, cfg.data)
	}
	if err != nil {
		return nil, fmt.Errorf("serve: open embedded store in %s: %w", cfg.data, err)
	}
	return s, nil
}

// serveDebug serves net/http/pprof on addr, on a listener of its own so
// that profiles are never reachable through the API's address. It leaves
// out /debug/pprof/cmdline, which would show a --store URI's password.
func serveDebug(addr string, logger *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return servePrivate("debug", addr, "/debug/pprof/", mux, logger,
		"profiles show memory contents and stacks")
}

// serveMetrics serves the node's metrics at /metrics on addr, without
// authentication: the address is meant to be reachable only by the
// scraper (docs/OPERATIONS.md).
func serveMetrics(addr string, h http.Handler, logger *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return servePrivate("metrics", addr, "/metrics", mux, logger,
		"metrics need no key there")
}

// servePrivate serves h on a listener of its own at addr, for --NAME-addr,
// logs its url (ending in path), and warns, giving why, if the address is
// reachable from other hosts.
func servePrivate(name, addr, path string, h http.Handler, logger *slog.Logger, why string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve: listen on --%s-addr %s: %w", name, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	logger.Info("trail: "+name+" server", "url", "http://"+ln.Addr().String()+path)
	if !loopback(ln.Addr()) {
		logger.Warn("trail: --"+name+"-addr is reachable from other hosts: "+why+"; bind it to 127.0.0.1 or a private network", "addr", ln.Addr().String())
	}
	return srv, nil
}

// uiConfig returns the viewer's configuration, or nil with --ui=false.
func (cfg *serveConfig) uiConfig() *ui.Config {
	if !cfg.ui {
		return nil
	}
	return &ui.Config{FrameAncestors: cfg.uiFrameAncestors}
}
