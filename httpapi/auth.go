package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/trail-audit/trail"
)

// An Authenticator establishes who is calling; *auth.Authenticator
// implements it. A nil Config.Auth turns authentication off: every caller
// is trail.OpenPrincipal.
type Authenticator interface {
	// Authenticate returns the principal of an Authorization header sent
	// from client. Every bad credential is trail.ErrUnauthorized.
	Authenticate(ctx context.Context, header, client string) (*trail.Principal, error)
	// Allow charges n units to p's rate, or returns a
	// *trail.RateLimitError.
	Allow(p *trail.Principal, n int) error
}

// Public marks a route that needs no credential. Every route names a scope
// or Public; route panics on neither, so no route can be left unguarded by
// omission.
const Public trail.Scope = "public"

// A Route is one method and path of the API with the scope it needs.
type Route struct {
	Method string
	Path   string
	Scope  trail.Scope
}

// Routes returns the route table of a handler made by New, or of one
// wrapped by a handler with an Unwrap method, in registration order. Tests
// derive their access matrix and the OpenAPI coverage check from it, so
// that a new route cannot escape them.
func Routes(h http.Handler) []Route {
	switch s := h.(type) {
	case *server:
		return slices.Clone(s.table)
	case interface{ Unwrap() http.Handler }:
		// A test's middleware, such as the OpenAPI validator.
		return Routes(s.Unwrap())
	}
	return nil
}

// endpoint is a handler and the scope it needs.
type endpoint struct {
	scope trail.Scope
	h     http.HandlerFunc
}

// guard wraps h so that it runs only for a caller holding scope, with the
// caller's principal in the request context. Writes are charged to the
// key's rate per event by the handler, which knows how many; every other
// request is charged one unit here.
func (s *server) guard(scope trail.Scope, h http.HandlerFunc) http.HandlerFunc {
	switch {
	case scope == Public:
		return h
	case !slices.Contains(trail.AllScopes, scope):
		panic(fmt.Sprintf("httpapi: route with scope %q; want one of %v or Public", scope, trail.AllScopes))
	}
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.principal(r)
		if err == nil {
			err = p.Require(scope)
		}
		if err == nil && scope != trail.ScopeWrite {
			err = s.allow(p, 1)
		}
		if err != nil {
			s.error(w, r, err)
			return
		}
		h(w, r.WithContext(trail.NewContextWithPrincipal(r.Context(), p)))
	}
}

// principal authenticates r by its Authorization header or the viewer's
// session cookie (session.go), or returns the open principal when
// authentication is off.
func (s *server) principal(r *http.Request) (*trail.Principal, error) {
	if s.auth == nil {
		return trail.OpenPrincipal, nil
	}
	h, err := credential(r)
	if err != nil {
		return nil, err
	}
	p, err := s.auth.Authenticate(r.Context(), h, clientAddr(r))
	s.observeRefusal(err)
	if err == nil {
		err = p.CheckHost(r.Host)
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
	err := s.auth.Allow(p, n)
	s.observeRefusal(err)
	return err
}

// clientAddr is the address failed authentications are counted against:
// the peer's IP. Behind a proxy that is the proxy (docs/SECURITY.md).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// visible reads the record with the id if the caller may see it
// (trail.GetVisible).
func (s *server) visible(ctx context.Context, id string) (*trail.Entry, error) {
	return trail.GetVisible(ctx, s.store, id)
}

// recordCacheControl is the Cache-Control of a record or a fixed proof.
// They never change, but with authentication on, a shared cache must not
// hand one tenant's record, or an audit-only proof, to another caller.
func recordCacheControl(ctx context.Context) string {
	if p := trail.PrincipalFromContext(ctx); p != nil && p.Open {
		return "public, max-age=31536000, immutable"
	}
	return "private, max-age=31536000, immutable"
}

// setAuthHeaders adds the headers an authentication or rate-limit problem
// carries: WWW-Authenticate on 401 (RFC 6750), and Retry-After with the
// RateLimit and RateLimit-Policy fields of the IETF draft on 429.
func setAuthHeaders(h http.Header, code string, err error) {
	switch code {
	case trail.EUNAUTHORIZED:
		h.Set("WWW-Authenticate", `Bearer realm="trail"`)
	case trail.ERATELIMITED:
		var rl *trail.RateLimitError
		if !errors.As(err, &rl) {
			return
		}
		retry := max(1, int64((rl.RetryAfter+time.Second-1)/time.Second))
		h.Set("Retry-After", fmt.Sprint(retry))
		h.Set("RateLimit-Policy", fmt.Sprintf("%q;q=%d;w=%d", rl.Policy, rl.Quota, int64(rl.Window/time.Second)))
		h.Set("RateLimit", fmt.Sprintf("%q;r=0;t=%d", rl.Policy, retry))
	}
}
