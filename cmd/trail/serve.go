package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/httpapi"
	"github.com/trail-audit/trail/ingest"
	"github.com/trail-audit/trail/merkle"
	"github.com/trail-audit/trail/mongo"
	"github.com/trail-audit/trail/sqlite"
	"golang.org/x/term"
)

// serveConfig is trail serve's configuration, from flags and TRAIL_*.
type serveConfig struct {
	addr               string
	data               string
	store              string
	log                string
	logSet             bool // --log given: with MongoDB, the log name prefix
	origin             string
	keyFile            string
	checkpointInterval time.Duration
	commitMaxEvents    int
	commitMaxWait      time.Duration
	queueEvents        int
	maxEventBytes      byteSize
	maxRequestBytes    byteSize
	maxBatchEvents     int
	leaseTTL           time.Duration
	shutdownTimeout    time.Duration
	logLevel           string
	logFormat          string
	debugAddr          string
}

const serveAbout = `Serve runs the trail service: the HTTP API of docs/API.md over an embedded
SQLite store in --data (the default), or over MongoDB (--store mongodb://...).
It prints "listening on http://HOST:PORT" once it accepts connections.
SIGTERM or SIGINT stop it gracefully: it stops accepting connections, lets
requests in flight finish, commits everything queued, writes a final signed
checkpoint and closes the store.
`

func (c *cli) runServe(ctx context.Context, args []string) error {
	var cfg serveConfig
	cfg.maxEventBytes = byteSize(trail.DefaultLimits.MaxEventBytes)
	cfg.maxRequestBytes = byteSize(trail.DefaultLimits.MaxRequestBytes)
	fs := newFlagSet("serve", "[flags]", serveAbout, c.stderr)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "`address` to listen on (host:port; port 0 picks a free one)")
	fs.StringVar(&cfg.data, "data", "./data", "`directory` for the embedded store and the signing key (created 0700)")
	fs.StringVar(&cfg.store, "store", "embedded", "`store`: \"embedded\" (SQLite in --data) or a MongoDB URI, mongodb://host/db")
	fs.StringVar(&cfg.log, "log", "main", "`name` of the log the embedded store appends to; with MongoDB, if set, the prefix of the logs' names (there \"log\": log-1, log-2, ...)")
	fs.StringVar(&cfg.origin, "origin", "trail.local", "checkpoint origin prefix and signing key `name` (origin is PREFIX/LOG)")
	fs.StringVar(&cfg.keyFile, "key-file", "", "checkpoint signing key `file`, created (0600) on first start; replicas share one (default <data>/trail.key)")
	fs.DurationVar(&cfg.checkpointInterval, "checkpoint-interval", time.Second, "sign at most one checkpoint per `duration`")
	fs.IntVar(&cfg.commitMaxEvents, "commit-max-events", 8192, "most `events` in one group commit")
	fs.DurationVar(&cfg.commitMaxWait, "commit-max-wait", 0, "the `duration` a commit waits for more requests (0: commit what is queued)")
	fs.IntVar(&cfg.queueEvents, "queue-events", 65536, "`events` queued for commit before requests get 503 + Retry-After")
	fs.Var(&cfg.maxEventBytes, "max-event-bytes", "largest event `size` (413 above)")
	fs.Var(&cfg.maxRequestBytes, "max-request-bytes", "largest request body `size` (413 above)")
	fs.IntVar(&cfg.maxBatchEvents, "max-batch-events", trail.DefaultLimits.MaxBatchEvents, "most `events` in one request (413 above)")
	fs.DurationVar(&cfg.leaseTTL, "lease-ttl", 10*time.Second, "MongoDB only: the `duration` a replica's claim on its log lasts without renewal")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 30*time.Second, "the `duration` a graceful shutdown may take before open connections are closed")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.logFormat, "log-format", "auto", "log `format`: text, json, or auto (text on a terminal, else json)")
	fs.StringVar(&cfg.debugAddr, "debug-addr", "", "serve Go profiles (/debug/pprof/) on this `address`, apart from the API (off if empty; keep it private)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("serve: unexpected argument %q (flags start with --)", fs.Arg(0))}
	}
	fs.Visit(func(f *flag.Flag) { cfg.logSet = cfg.logSet || f.Name == "log" })
	if err := cfg.validate(); err != nil {
		return err
	}
	logger, err := newLogger(c.stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	return serve(ctx, &cfg, logger, c.stdout)
}

func (cfg *serveConfig) validate() error {
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"commit-max-events", int64(cfg.commitMaxEvents)}, {"queue-events", int64(cfg.queueEvents)},
		{"max-event-bytes", int64(cfg.maxEventBytes)}, {"max-request-bytes", int64(cfg.maxRequestBytes)},
		{"max-batch-events", int64(cfg.maxBatchEvents)},
		{"checkpoint-interval", int64(cfg.checkpointInterval)}, {"lease-ttl", int64(cfg.leaseTTL)},
		{"shutdown-timeout", int64(cfg.shutdownTimeout)},
	} {
		if err := positive(n.name, n.v); err != nil {
			return err
		}
	}
	if err := nonNegative("commit-max-wait", cfg.commitMaxWait); err != nil {
		return err
	}
	if cfg.store != "embedded" && !isMongoURI(cfg.store) {
		return usageError{fmt.Errorf(`--store must be "embedded" or a MongoDB URI such as mongodb://localhost:27017/trail, not %q`, cfg.store)}
	}
	if cfg.log == "" || cfg.origin == "" {
		return usageError{errors.New("--log and --origin must not be empty")}
	}
	if cfg.keyFile == "" {
		cfg.keyFile = filepath.Join(cfg.data, "trail.key")
	}
	return nil
}

func isMongoURI(s string) bool {
	return strings.HasPrefix(s, "mongodb://") || strings.HasPrefix(s, "mongodb+srv://")
}

// newLogger returns a slog logger writing to w at the level, in the format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level must be debug, info, warn or error, not %q", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format must be text, json or auto, not %q", format)}
}

// serve runs the service until ctx is done, then shuts it down gracefully.
func serve(ctx context.Context, cfg *serveConfig, logger *slog.Logger, stdout io.Writer) (err error) {
	// Listen first: a busy port is the likeliest mistake, and it should
	// fail before anything is created on disk.
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("serve: %s is in use by another process: stop it, or choose another address with --addr (TRAIL_ADDR)", cfg.addr)
		}
		return fmt.Errorf("serve: listen on %s: %w; check --addr (TRAIL_ADDR)", cfg.addr, err)
	}
	defer ln.Close()

	// The service runs on a context of its own: the writer and the lease
	// must outlive the signal until the shutdown below has drained them.
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()

	store, closeStore, err := openStore(life, cfg, logger)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := closeStore(); cerr != nil && err == nil {
			err = fmt.Errorf("serve: close store: %w", cerr)
		}
	}()

	signer, verifier, err := merkle.LoadOrCreateKey(cfg.keyFile, cfg.origin)
	if err != nil {
		return fmt.Errorf("serve: signing key: %w (set --key-file, or fix the file's permissions)", err)
	}
	ing, err := ingest.New(life, store, ingest.Config{
		MaxBatch:           cfg.commitMaxEvents,
		MaxWait:            cfg.commitMaxWait,
		QueueEvents:        cfg.queueEvents,
		Signer:             signer,
		Verifier:           verifier,
		Origin:             cfg.origin,
		CheckpointInterval: cfg.checkpointInterval,
		Logger:             logger,
	})
	if err != nil {
		return fmt.Errorf("serve: start ingest: %w", err)
	}
	ingClosed := false
	defer func() {
		// On an early return, still commit what was accepted.
		if !ingClosed {
			cctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
			defer cancel()
			ing.Close(cctx)
		}
	}()

	handler := httpapi.New(httpapi.Config{
		Ingester: ing,
		Store:    store,
		Limits: trail.Limits{
			MaxEventBytes:   int(cfg.maxEventBytes),
			MaxRequestBytes: int64(cfg.maxRequestBytes),
			MaxBatchEvents:  cfg.maxBatchEvents,
		},
		Logger: logger,
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// A 10 MiB body from a slow producer must still arrive; answers
		// have no write timeout, because NDJSON streams of a large query
		// legitimately take long.
		ReadTimeout:    2 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cfg.debugAddr != "" {
		dbg, err := serveDebug(cfg.debugAddr, logger)
		if err != nil {
			return err
		}
		defer dbg.Close()
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	head := ing.Head()
	url := "http://" + ln.Addr().String()
	logger.Info("trail: serving", "url", url, "store", storeName(cfg.store), "log", head.Log, "size", head.Size,
		"verifier_key", verifier, "version", versionString())
	fmt.Fprintf(stdout, "listening on %s\n", url)

	select {
	case <-ctx.Done():
		logger.Info("trail: shutting down", "reason", context.Cause(ctx))
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}

	// Stop accepting, and let requests in flight finish: each is answered
	// only after its commit, so this also waits for their commits.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("trail: requests still running at the shutdown timeout; closing their connections", "err", err)
		srv.Close()
	}
	// Commit anything still queued and sign a final checkpoint.
	ingClosed = true
	if err := ing.Close(sctx); err != nil {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	head = ing.Head()
	logger.Info("trail: stopped", "log", head.Log, "size", head.Size)
	return nil
}

// storeName is the store for logs, without a URI's credentials.
func storeName(store string) string {
	if !isMongoURI(store) {
		return store
	}
	if i := strings.Index(store, "@"); i >= 0 {
		return "mongodb://…" + store[i:]
	}
	return store
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
	unlock, err := lockDir(cfg.data)
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(cfg.data, "trail.db")
	s, err := sqlite.Open(sqlite.Config{Path: path, Log: cfg.log})
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("serve: open embedded store %s: %w", path, err)
	}
	return s, func() error {
		defer unlock()
		return s.Close()
	}, nil
}

// serveDebug serves net/http/pprof on addr, on a listener of its own so
// that profiles are never reachable through the API's address.
func serveDebug(addr string, logger *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve: listen on --debug-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	logger.Info("trail: debug server", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return srv, nil
}
