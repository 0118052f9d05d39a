package grpcapi

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"

	"connectrpc.com/connect"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/gen/logger/loggerconnect"
	"github.com/trail-audit/trail/gen/trail/v1/trailv1connect"
)

// Public marks a procedure that needs no credential.
const Public trail.Scope = "public"

// scopes names the scope of every procedure of Services, as httpapi's
// route table does for every route. A procedure missing here is refused,
// so that none is left unguarded by omission; a test checks the table
// against the services' descriptors. Health and reflection are public and
// bypass the guard.
var scopes = map[string]trail.Scope{
	loggerconnect.LoggerServiceCreateLogProcedure:        trail.ScopeWrite,
	loggerconnect.LoggerServiceReadLogProcedure:          trail.ScopeRead,
	loggerconnect.LoggerServiceReadLogByIdProcedure:      trail.ScopeRead,
	trailv1connect.TrailServiceAppendProcedure:           trail.ScopeWrite,
	trailv1connect.TrailServiceGetProcedure:              trail.ScopeRead,
	trailv1connect.TrailServiceListProcedure:             trail.ScopeRead,
	trailv1connect.TrailServiceTailProcedure:             trail.ScopeRead,
	trailv1connect.TrailServiceCheckpointProcedure:       Public,
	trailv1connect.TrailServiceInclusionProofProcedure:   trail.ScopeRead,
	trailv1connect.TrailServiceConsistencyProofProcedure: trail.ScopeAudit,
}

// Scopes returns the scope of every procedure, keyed by its path
// ("/trail.v1.TrailService/Append"). Tests derive their access matrix
// from it.
func Scopes() map[string]trail.Scope { return maps.Clone(scopes) }

// guard is the interceptor that authenticates every call: the one place
// gRPC checks scopes, as httpapi's guard is for REST.
type guard struct{ s *server }

func (g guard) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := g.s.enter(ctx, req.Spec().Procedure, req.Header(), req.Peer())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (g guard) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (g guard) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := g.s.enter(ctx, conn.Spec().Procedure, conn.RequestHeader(), conn.Peer())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// enter authenticates a call to procedure and checks its scope, returning
// a context that carries the caller's principal. Writes are charged to
// the key's rate per event by the handler; every other call is charged
// one unit here.
func (s *server) enter(ctx context.Context, procedure string, h http.Header, peer connect.Peer) (context.Context, error) {
	scope, ok := scopes[procedure]
	if !ok {
		return ctx, s.error(ctx, procedure, fmt.Errorf("grpcapi: procedure %s has no scope", procedure))
	}
	if scope == Public {
		return ctx, nil
	}
	p, err := s.principal(ctx, h, peer)
	if err == nil {
		err = p.Require(scope)
	}
	if err == nil && scope != trail.ScopeWrite {
		err = s.allow(p, 1)
	}
	if err != nil {
		return ctx, s.error(ctx, procedure, err)
	}
	return trail.NewContextWithPrincipal(ctx, p), nil
}

// principal authenticates the authorization metadata, or returns the open
// principal when authentication is off. Failed attempts count against the
// peer's IP, as on REST, and an open server answers only loopback hosts.
func (s *server) principal(ctx context.Context, h http.Header, peer connect.Peer) (*trail.Principal, error) {
	if s.auth == nil {
		return trail.OpenPrincipal, nil
	}
	host, _, err := net.SplitHostPort(peer.Addr)
	if err != nil {
		host = peer.Addr
	}
	p, err := s.auth.Authenticate(ctx, h.Get("Authorization"), host)
	if err == nil {
		reqHost, _ := ctx.Value(hostKey{}).(string)
		err = p.CheckHost(reqHost)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// allow charges n units to p's rate.
func (s *server) allow(p *trail.Principal, n int) error {
	if s.auth == nil {
		return nil
	}
	return s.auth.Allow(p, n)
}
