// Package httpapi serves trail's HTTP API (DESIGN.md §3, docs/API.md): ingest
// at POST /logs, reads, signed checkpoints and Merkle proofs, and health
// checks. Handlers decode, validate, call the trail.Ingester (writes,
// signed checkpoints, the log this node writes) or the trail.Reader (every
// read), and encode; every error leaves as RFC 9457 problem+json, mapped from trail
// error codes in one table (problem.go).
package httpapi

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/tail"
)

// Config is what New needs. Ingester and Store are required.
type Config struct {
	// Ingester takes writes and publishes signed checkpoints. If its
	// Verifier is "", signing is off and the checkpoint and proof endpoints
	// answer 404.
	Ingester trail.Ingester

	// Store serves reads and proofs. It is only a Reader, so that no
	// request can take the store's writer lock or touch its lease.
	Store trail.Reader

	// Limits bound each request; zero fields take trail.DefaultLimits.
	Limits trail.Limits

	// Memory bounds what requests hold in memory at once; zero fields take
	// DefaultMemory.
	Memory Memory

	// RetryAfter is the Retry-After of 503 answers (default 1s, rounded up
	// to whole seconds).
	RetryAfter time.Duration

	// Auth authenticates callers; nil turns authentication off, so that
	// every caller may do everything (--auth off, or auto on loopback).
	Auth Authenticator

	// Keys serves /keys and /tokens; nil answers them with 404.
	Keys KeyManager

	// Tail follows the log for GET /logs/stream; nil answers it with 404.
	Tail *tail.Hub

	// Heartbeat is how often an idle stream sends a comment (default
	// DefaultHeartbeat).
	Heartbeat time.Duration
	// UI, if set, makes the handler of the viewer at /ui/ (package ui),
	// given the server's problem+json writer for the viewer's own errors;
	// it is not an API route and authenticates nothing itself.
	UI func(problem func(http.ResponseWriter, *http.Request, error)) http.Handler

	// Observer is told of requests, authentication failures and rate
	// limits, for metrics (default: nobody).
	Observer Observer

	// Metrics serves GET /metrics; nil answers it with 404.
	Metrics http.Handler

	// Logger gets internal errors in full (default slog.Default()) and, at
	// debug level, one line per request.
	Logger *slog.Logger
}

// server holds the handlers' dependencies.
type server struct {
	ingester   trail.Ingester
	store      trail.Reader
	limits     trail.Limits
	bodies     budget // request bodies, process-wide
	reads      budget // read responses' record bytes, process-wide
	respBytes  int64  // one read response's record bytes
	retryAfter string // seconds, for the Retry-After header
	log        *slog.Logger
	mux        *http.ServeMux
	auth       Authenticator
	keys       KeyManager
	tail       *tail.Hub
	heartbeat  time.Duration
	table      []Route // every route and its scope, for Routes
	obs        Observer
	metrics    http.Handler
}

// New returns the API's handler. It panics if cfg lacks an Ingester or a
// Store, which is a wiring mistake rather than a runtime condition.
func New(cfg Config) http.Handler {
	if cfg.Ingester == nil || cfg.Store == nil {
		panic("httpapi: New: Config needs an Ingester and a Store")
	}
	s := &server{
		ingester:  cfg.Ingester,
		store:     cfg.Store,
		limits:    cfg.Limits.OrDefaults(),
		log:       cfg.Logger,
		mux:       http.NewServeMux(),
		auth:      cfg.Auth,
		keys:      cfg.Keys,
		tail:      cfg.Tail,
		heartbeat: cfg.Heartbeat,
		obs:       cfg.Observer,
		metrics:   cfg.Metrics,
	}
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultHeartbeat
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	cfg.Memory.setDefaults()
	s.bodies.max, s.reads.max, s.respBytes = cfg.Memory.Bodies, cfg.Memory.Reads, cfg.Memory.Response
	ra := cfg.RetryAfter
	if ra <= 0 {
		ra = time.Second
	}
	s.retryAfter = fmt.Sprint(int64((ra + time.Second - 1) / time.Second))
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = slog.New(contextHandler{s.log.Handler()})
	s.routes()
	if cfg.UI != nil {
		s.mux.Handle("/ui/", cfg.UI(s.error))
	}
	return s
}

// methods maps an HTTP method to its endpoint on one path.
type methods map[string]endpoint

// routes registers every endpoint with the scope it needs (auth.go). Each
// path also gets a method-less pattern that answers 405 with Allow, and "/"
// answers 404, so that the mux's own plain-text errors never reach a
// client.
func (s *server) routes() {
	read, write, audit, admin := trail.ScopeRead, trail.ScopeWrite, trail.ScopeAudit, trail.ScopeAdmin
	s.route("/logs", methods{"GET": {read, s.handleLogsIndex}, "POST": {write, s.handleLogsCreate}})
	s.route("/logs/stream", methods{"GET": {read, s.handleLogsStream}})
	s.route("/logs/{id}", methods{"GET": {read, s.handleLogsGet}})
	s.route("/logs/{id}/proof", methods{"GET": {read, s.handleProofRecord}})
	s.route("/proof/consistency", methods{"GET": {audit, s.handleProofConsistency}})
	s.route("/export", methods{"GET": {audit, s.handleExport}})
	s.route("/keys", methods{"GET": {admin, s.handleKeysIndex}, "POST": {admin, s.handleKeysCreate}})
	s.route("/keys/{id}/revoke", methods{"POST": {admin, s.handleKeysRevoke}})
	s.route("/tokens", methods{"POST": {admin, s.handleTokensCreate}})
	s.route("/checkpoint", methods{"GET": {Public, s.handleCheckpointGet}})
	s.route("/checkpoint/key", methods{"GET": {Public, s.handleCheckpointKey}})
	s.route("/whoami", methods{"GET": {read, s.handleWhoami}})
	s.route("/session", methods{"POST": {read, s.handleSessionCreate}, "DELETE": {Public, s.handleSessionDelete}})
	s.route("/healthz", methods{"GET": {Public, s.handleHealthz}})
	s.route("/readyz", methods{"GET": {Public, s.handleReadyz}})
	s.route("/metrics", methods{"GET": {trail.ScopeMetrics, s.handleMetrics}})
	s.route("/openapi.json", methods{"GET": {Public, s.handleOpenAPI}})
	s.mux.HandleFunc("/", s.handleNotFound)
}

func (s *server) route(path string, m methods) {
	var allow []string
	for _, method := range slices.Sorted(maps.Keys(m)) {
		e := m[method]
		s.mux.HandleFunc(method+" "+path, s.guard(e.scope, e.h))
		s.table = append(s.table, Route{Method: method, Path: path, Scope: e.scope})
		allow = append(allow, method)
		if method == "GET" {
			allow = append(allow, "HEAD") // GET patterns also match HEAD
		}
	}
	slices.Sort(allow)
	if path == "/logs/stream" {
		// A method-less pattern here would conflict with "GET /logs/{id}";
		// the 405 of /logs/{id} answers other methods with the same Allow.
		return
	}
	s.mux.HandleFunc(path, s.methodNotAllowed(strings.Join(allow, ", ")))
}

// methodNotAllowed answers 405 naming the methods the path has.
func (s *server) methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		msg := fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)
		if strings.HasPrefix(r.URL.Path, "/logs") {
			msg = "records are immutable: " + msg
		}
		s.error(w, r, trail.Errorf(trail.EMETHOD, "%s", msg))
	}
}

func (s *server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.error(w, r, trail.Errorf(trail.ENOTFOUND, "no endpoint at %s %s; see docs/API.md", r.Method, r.URL.Path))
}

// handleHealthz reports liveness: the process serves HTTP.
func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz reports readiness: the ingester can take writes and the
// store answers.
func (s *server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	for _, check := range []struct {
		what string
		fn   func(context.Context) error
	}{
		{"ingest is not ready", s.ingester.Ready},
		{"the store does not answer", s.store.Ping},
	} {
		if err := check.fn(ctx); err != nil {
			// Wrapped so that the log gets err in full and the client its
			// safe message.
			s.error(w, r, fmt.Errorf("%w: %w", trail.Errorf(trail.EUNAVAILABLE, "%s: %s", check.what, trail.ErrorMessage(err)), err))
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// ServeHTTP gives every request an id, recovers panics as 500 problems, logs
// the request at debug level, refuses a malformed query string and hands
// the request to the mux.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		id = newRequestID()
	}
	ctx := context.WithValue(r.Context(), requestIDKey{}, id)
	if tid, ok := trail.TraceID(r.Header.Get("Traceparent")); ok {
		ctx = context.WithValue(ctx, traceIDKey{}, tid)
	}
	r = r.WithContext(ctx)
	sw := &statusWriter{ResponseWriter: w}
	sw.Header().Set("X-Request-Id", id)
	sw.Header().Set("X-Content-Type-Options", "nosniff")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "httpapi: panic", "request_id", id, "method", r.Method,
				"path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if sw.status == 0 {
				s.error(sw, r, fmt.Errorf("httpapi: panic: %v", v))
			} else {
				panic(http.ErrAbortHandler) // too late for a problem: cut the response short
			}
		}
		took := time.Since(start)
		s.log.DebugContext(r.Context(), "http", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"bytes", sw.n, "duration", took, "request_id", id)
		s.obs.Request(routeOf(r), r.Method, cmp.Or(sw.status, http.StatusOK), took)
	}()
	if err := checkRawQuery(r.URL.RawQuery); err != nil {
		s.error(sw, r, err)
		return
	}
	s.dispatch(sw, r)
}

// statusWriter remembers the status and size of a response for the log and
// for panic recovery. Unwrap lets http.ResponseController reach Flush and
// deadlines.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type requestIDKey struct{}

// requestID returns the id ServeHTTP gave the request.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// validRequestID accepts a caller's X-Request-Id only if it is short and
// plain, since it is echoed in headers, bodies and logs.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:", c) >= 0) {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}
