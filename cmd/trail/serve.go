package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trail-audit/trail"
	"golang.org/x/term"
)

// serveConfig is trail serve's configuration, from flags and TRAIL_*.
type serveConfig struct {
	addr               string
	data               string
	store              string
	storeFile          string // holds the store URI, instead of --store
	segmentSize        byteSize
	compressSegments   bool
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
	metricsAddr        string
	tls                tlsFlags
	limits             limitFlags
	auth               string
	ui                 bool
	uiFrameAncestors   string
}

const serveAbout = `Serve runs the trail service: the HTTP API of docs/API.md, and on the same
port its gRPC services (gRPC over HTTP/2, h2c without TLS; gRPC-Web;
Connect), over the embedded log-structured store in --data (the default),
over the SQLite store of earlier versions (--store sqlite), or over
MongoDB (--store mongodb://...).
It prints "listening on http://HOST:PORT" once it accepts connections
(https:// with --tls-cert; SIGHUP then reloads the certificate).
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
	fs.StringVar(&cfg.store, "store", "embedded", "`store`: \"embedded\" (segments in --data), \"sqlite\" (the earlier embedded store, --data/trail.db) or a MongoDB URI, mongodb://host/db")
	cfg.segmentSize = 64 << 20
	fs.Var(&cfg.segmentSize, "segment-size", "embedded store: the `size` at which a log segment is sealed and the next begun")
	fs.BoolVar(&cfg.compressSegments, "compress-segments", true, "embedded store: compress sealed segments with zstd, in the background (false keeps them as written; a log may hold both)")
	fs.StringVar(&cfg.storeFile, "store-file", "", "`file` holding the MongoDB URI, instead of --store, so that its password is not on the command line")
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
	fs.StringVar(&cfg.auth, "auth", authAuto, "`mode`: on (every request but /checkpoint and health needs a key), off, or auto (on unless no key exists and --addr is loopback; refuses a non-loopback address with no keys)")
	fs.StringVar(&cfg.debugAddr, "debug-addr", "", "serve Go profiles (/debug/pprof/) on this `address`, apart from the API (off if empty; keep it private)")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", "", "also serve Prometheus metrics (/metrics) on this `address`, without authentication (off if empty; keep it private; GET /metrics on --addr needs scope metrics)")
	fs.BoolVar(&cfg.ui, "ui", true, "serve the viewer at /ui/ (docs/VIEWER.md)")
	fs.StringVar(&cfg.uiFrameAncestors, "ui-frame-ancestors", "", "CSP frame-ancestors `sources` allowed to embed the viewer in a frame, e.g. \"https://app.example.com\" (default 'none')")
	cfg.tls.register(fs)
	cfg.limits.register(fs)
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
		{"shutdown-timeout", int64(cfg.shutdownTimeout)}, {"segment-size", int64(cfg.segmentSize)},
	} {
		if err := positive(n.name, n.v); err != nil {
			return err
		}
	}
	if err := nonNegative("commit-max-wait", cfg.commitMaxWait); err != nil {
		return err
	}
	if err := cfg.limits.validate(); err != nil {
		return err
	}
	if err := cfg.validateStore(); err != nil {
		return err
	}
	return validAuthMode(cfg.auth)
}

// validateStore checks the flags that locate the store and the signing key.
func (cfg *serveConfig) validateStore() error {
	if err := cfg.readStoreFile(); err != nil {
		return err
	}
	if cfg.store != "embedded" && cfg.store != "sqlite" && !isMongoURI(cfg.store) {
		return usageError{fmt.Errorf(`--store must be "embedded", "sqlite" or a MongoDB URI such as mongodb://localhost:27017/trail, not %q`, cfg.store)}
	}
	if cfg.log == "" || cfg.origin == "" {
		return usageError{errors.New("--log and --origin must not be empty")}
	}
	if err := cfg.tls.validate(); err != nil {
		return err
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
