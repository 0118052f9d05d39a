// Package node assembles one trail node over an open store: the group-commit
// ingester that writes it and the HTTP API that serves it. cmd/trail serve
// and the test servers (internal/testserver) both build nodes here, so that
// tests run the wiring production runs. Opening the store, listening and
// shutting the HTTP server down stay with the caller.
package node

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
	"github.com/trail-audit/trail/grpcapi"
	"github.com/trail-audit/trail/httpapi"
	"github.com/trail-audit/trail/ingest"
	"github.com/trail-audit/trail/metrics"
	"github.com/trail-audit/trail/tail"
	"github.com/trail-audit/trail/ui"
)

// Config is what New needs besides the store.
type Config struct {
	// Ingest tunes the ingester and holds its checkpoint signer. A nil
	// Ingest.Logger takes Logger.
	Ingest ingest.Config

	// Limits bound each HTTP request; zero fields take trail.DefaultLimits.
	Limits trail.Limits

	// Memory bounds what HTTP requests hold in memory at once; zero fields
	// take httpapi.DefaultMemory.
	Memory httpapi.Memory

	// Logger gets the API's internal errors and request lines (default
	// slog.Default()).
	Logger *slog.Logger

	// Reader is what the API reads, by default the store itself. Tests set
	// it to the store wrapped with faults.
	Reader trail.Reader

	// Tail bounds the live tail's memory; zero fields take
	// tail.DefaultConfig's, but PageBytes defaults to Memory.Response, so
	// that a stream's pages are the size of every other read's.
	Tail tail.Config

	// Heartbeat is how often an idle live tail sends a comment (default
	// httpapi.DefaultHeartbeat).
	Heartbeat time.Duration

	// Auth turns authentication on, with the keys the store keeps (its Keys
	// is filled in). Nil turns it off: every caller may do everything. Key
	// management (/keys, /tokens) is served either way.
	Auth *auth.Config

	// UI serves the viewer at /ui/; nil turns it off.
	UI *ui.Config
}

// A Node is an ingester writing one store and the API over it.
type Node struct {
	Ingester *ingest.Ingester
	// Handler serves the REST API and, on the same paths a gRPC client
	// uses, the gRPC services (grpcapi). Serve it with HTTP/2 (h2c on
	// plaintext) for gRPC clients.
	Handler http.Handler
	// Tail receives every commit of the ingester and serves the live tail
	// (GET /logs/stream, gRPC Tail). Close it when the server shuts down,
	// so that open streams end (they would hold http.Server.Shutdown).
	Tail *tail.Hub
	// Keys manages the store's API keys, logging each change; nil if the
	// store keeps no keys.
	Keys *auth.Manager
	// Metrics is the node's own Prometheus registry and its metrics,
	// served at GET /metrics and, by serve --metrics-addr, elsewhere.
	Metrics *metrics.Metrics
}

// New starts the ingester on store, after its start-up integrity check
// (which ctx bounds), and builds the API's handler. The caller keeps the
// store and closes it after Close.
func New(ctx context.Context, store trail.Store, cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Ingest.Logger == nil {
		cfg.Ingest.Logger = cfg.Logger
	}
	m := metrics.New()
	if z, ok := store.(interface{ CompressFailures() uint64 }); ok {
		m.WatchCompression(z.CompressFailures)
	}
	cfg.Ingest.Observer = m
	if cfg.Tail.PageBytes <= 0 {
		cfg.Tail.PageBytes = cmp.Or(cfg.Memory.Response, httpapi.DefaultMemory.Response)
	}
	hub := tail.NewHub(cfg.Tail)
	if prev := cfg.Ingest.Committed; prev != nil {
		cfg.Ingest.Committed = func(es []*trail.Entry) { prev(es); hub.Publish(es) }
	} else {
		cfg.Ingest.Committed = hub.Publish
	}
	ing, err := ingest.New(ctx, store, cfg.Ingest)
	if err != nil {
		return nil, fmt.Errorf("start ingest: %w", err)
	}
	m.WatchQueue(ing.Queued)
	read := cfg.Reader
	if read == nil {
		read = store
	}
	n := &Node{Ingester: ing, Tail: hub, Metrics: m}
	hc := httpapi.Config{Ingester: ing, Store: m.Reader(read), Limits: cfg.Limits, Memory: cfg.Memory, Logger: cfg.Logger,
		Tail: hub, Heartbeat: cfg.Heartbeat, Observer: m, Metrics: m.Handler()}
	gc := grpcapi.Config{Ingester: ing, Store: m.Reader(read), Limits: cfg.Limits, Logger: cfg.Logger,
		Tail: hub, Observer: m}
	if ks, ok := store.(trail.KeyStore); ok {
		ac := auth.Config{}
		if cfg.Auth != nil {
			ac = *cfg.Auth
		}
		ac.Keys = ks
		a := auth.New(ac)
		n.Keys = &auth.Manager{Keys: ks, Ingester: ing, Auth: a}
		hc.Keys = n.Keys
		if cfg.Auth != nil {
			hc.Auth, gc.Auth = a, a
		}
	} else if cfg.Auth != nil {
		ing.Close(ctx)
		return nil, fmt.Errorf("authentication is on, but the store cannot keep API keys")
	}
	if cfg.UI != nil {
		uc := *cfg.UI
		hc.UI = func(problem func(http.ResponseWriter, *http.Request, error)) http.Handler {
			uc.Problem = problem
			return ui.New(uc)
		}
	}
	n.Handler = grpcapi.Handler(gc, httpapi.New(hc))
	return n, nil
}

// Close stops taking writes, commits everything queued and signs a final
// checkpoint. Stop the HTTP server first, so that no request is cut off
// between its commit and its answer.
func (n *Node) Close(ctx context.Context) error {
	n.Tail.Close()
	return n.Ingester.Close(ctx)
}

// Protocols returns the protocols a node's server speaks: HTTP/1.1, and
// HTTP/2 both over TLS and in plaintext (h2c with prior knowledge), since
// gRPC clients need HTTP/2 and plaintext gRPC has no upgrade. Set it as
// http.Server.Protocols.
func Protocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return p
}
