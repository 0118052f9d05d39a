// Package grpcapi serves trail over gRPC, gRPC-Web and Connect
// (connectrpc.com/connect) on the REST port: the proof of concept's
// logger.LoggerService, unchanged on the wire, and trail.v1.TrailService,
// the API of docs/API.md with records as their exact bytes. Beside them it
// serves gRPC server reflection and the standard health service.
//
// Like httpapi, it is a thin adapter: handlers decode, ask the caller's
// trail.Principal, call the trail.Ingester or trail.Reader, and encode.
// One guard (auth.go) authenticates every call by its procedure's scope,
// and one table (errors.go) maps trail's error codes to gRPC codes.
package grpcapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
	"github.com/trail-audit/trail/gen/logger/loggerconnect"
	"github.com/trail-audit/trail/gen/trail/v1/trailv1connect"
	"github.com/trail-audit/trail/tail"
)

// Config is what Handler needs. Ingester and Store are required.
type Config struct {
	// Ingester takes writes and publishes signed checkpoints.
	Ingester trail.Ingester

	// Store serves every read and proof.
	Store trail.Reader

	// Limits bound each call as they bound a REST request; zero fields take
	// trail.DefaultLimits.
	Limits trail.Limits

	// Auth authenticates callers by their "authorization: Bearer" metadata;
	// nil turns authentication off (every caller may do everything).
	Auth *auth.Authenticator

	// RetryAfter is the RetryInfo delay of Unavailable answers (default 1s).
	RetryAfter time.Duration

	// Tail is the live tail's hub, which Tail follows; nil answers Tail
	// with NotFound.
	Tail *tail.Hub

	// Observer counts authentication failures, rate-limited calls and
	// live-tail subscribers (the node's metrics); nil counts nothing.
	Observer Observer

	// Logger gets internal errors in full (default slog.Default()).
	Logger *slog.Logger
}

// server holds the handlers' dependencies.
type server struct {
	ingester   trail.Ingester
	store      trail.Reader
	limits     trail.Limits
	auth       *auth.Authenticator
	retryAfter time.Duration
	tail       *tail.Hub
	obs        Observer
	log        *slog.Logger
}

// An Observer is told what the metrics of docs/OPERATIONS.md count; the
// node's *metrics.Metrics is one.
type Observer interface {
	// AuthFailed reports a call refused as Unauthenticated.
	AuthFailed()
	// RateLimited reports a call refused over a rate, by its policy.
	RateLimited(policy string)
	// AddTailSubscribers adds delta to the count of live-tail subscribers.
	AddTailSubscribers(delta int)
}

type nopObserver struct{}

func (nopObserver) AuthFailed()            {}
func (nopObserver) RateLimited(string)     {}
func (nopObserver) AddTailSubscribers(int) {}

// Services are the fully qualified names of the services Handler serves
// besides health and reflection.
var Services = []string{loggerconnect.LoggerServiceName, trailv1connect.TrailServiceName}

// Handler returns a handler that serves the gRPC services of cfg and hands
// every other request to rest untouched, so that both share one port. It
// panics if cfg lacks an Ingester or a Store, a wiring mistake.
func Handler(cfg Config, rest http.Handler) http.Handler {
	if cfg.Ingester == nil || cfg.Store == nil {
		panic("grpcapi: Handler: Config needs an Ingester and a Store")
	}
	s := &server{
		ingester: cfg.Ingester, store: cfg.Store, limits: cfg.Limits.OrDefaults(), auth: cfg.Auth,
		retryAfter: cfg.RetryAfter, tail: cfg.Tail, obs: cfg.Observer, log: cfg.Logger,
	}
	if s.retryAfter <= 0 {
		s.retryAfter = time.Second
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}

	opts := []connect.HandlerOption{
		connect.WithInterceptors(guard{s}),
		connect.WithReadMaxBytes(int(s.limits.MaxRequestBytes)),
		connect.WithRecover(s.recover),
	}
	m := &mux{grpc: http.NewServeMux(), rest: rest}
	m.handle(loggerconnect.NewLoggerServiceHandler(&loggerService{s}, opts...))
	m.handle(trailv1connect.NewTrailServiceHandler(&trailService{s}, opts...))
	m.handle(grpchealth.NewHandler(&health{s}))
	reflector := grpcreflect.NewStaticReflector(append([]string{grpchealth.HealthV1ServiceName}, Services...)...)
	m.handle(grpcreflect.NewHandlerV1(reflector))
	m.handle(grpcreflect.NewHandlerV1Alpha(reflector))
	return m
}

// recover logs a handler's panic; connect answers it as Internal.
func (s *server) recover(ctx context.Context, spec connect.Spec, _ http.Header, v any) error {
	s.log.ErrorContext(ctx, "grpcapi: panic", "procedure", spec.Procedure, "panic", v)
	return connect.NewError(connect.CodeInternal, errorString("internal error"))
}

type errorString string

func (e errorString) Error() string { return string(e) }

// mux sends the gRPC services' paths to their handlers and everything else
// to the REST handler. It matches by prefix rather than through a second
// http.ServeMux, so that REST paths reach httpapi exactly as sent (a
// ServeMux would redirect unclean paths before httpapi saw them).
type mux struct {
	grpc     *http.ServeMux
	prefixes []string
	rest     http.Handler
}

func (m *mux) handle(prefix string, h http.Handler) {
	m.grpc.Handle(prefix, h)
	m.prefixes = append(m.prefixes, prefix)
}

// Unwrap returns the REST handler, so that httpapi.Routes finds the route
// table through this handler.
func (m *mux) Unwrap() http.Handler { return m.rest }

// hostKey is the context key of the request's Host.
type hostKey struct{}

func (m *mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, p := range m.prefixes {
		if strings.HasPrefix(r.URL.Path, p) {
			// connect hides the Host (the gRPC authority); the guard needs
			// it to refuse DNS rebinding (trail.Principal.CheckHost).
			m.grpc.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), hostKey{}, r.Host)))
			return
		}
	}
	m.rest.ServeHTTP(w, r)
}

// health answers the standard health service as GET /readyz does: serving
// when the ingester can take writes and the store answers.
type health struct{ s *server }

func (h *health) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	switch req.Service {
	case "", loggerconnect.LoggerServiceName, trailv1connect.TrailServiceName:
	default:
		return nil, connect.NewError(connect.CodeNotFound, errorString("unknown service "+req.Service))
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if h.s.ingester.Ready(ctx) != nil || h.s.store.Ping(ctx) != nil {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}
