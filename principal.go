package trail

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// A Principal is who is calling: the key (or viewer token) a request
// authenticated with, its scopes and its bindings. Transports put it in the
// context once, and every read and write path asks it, through the methods
// below, what the caller may do; no handler re-implements a check.
//
// A nil *Principal is nobody: it may do nothing. That keeps a transport that
// forgot to authenticate closed rather than open.
type Principal struct {
	KeyID  string // the key's id; "" for the open principal
	Scopes []Scope
	Tenant string // "" unless bound to one tenant
	Source string // "" unless bound to one source.service

	// Rate is the key's limit in events per second (0: none).
	Rate float64

	// Viewer is true for a viewer token rather than a key.
	Viewer bool

	// TokenID is a viewer token's own id (its jti), which its rate is
	// charged to; "" for a key.
	TokenID string

	// Open is true when authentication is off: every scope, no bindings.
	Open bool
}

// OpenPrincipal is the caller of a server that runs with authentication
// off (--auth off, or auto on loopback with no keys).
var OpenPrincipal = &Principal{Open: true}

// PrincipalOf returns the principal of a request authenticated with k.
func PrincipalOf(k *Key) *Principal {
	return &Principal{KeyID: k.ID, Scopes: slices.Clone(k.Scopes), Tenant: k.Tenant, Source: k.Source, Rate: k.Rate}
}

type principalKey struct{}

// NewContextWithPrincipal returns a copy of ctx that carries p.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the principal in ctx, or nil (nobody) if it
// has none.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Has reports whether p holds scope s. Audit includes read: an auditor
// reads every tenant's records.
func (p *Principal) Has(s Scope) bool {
	switch {
	case p == nil:
		return false
	case p.Open, slices.Contains(p.Scopes, s):
		return true
	}
	return s == ScopeRead && slices.Contains(p.Scopes, ScopeAudit)
}

// Require returns nil if p holds scope s, an *Error with EUNAUTHORIZED if
// p is nobody, and one with EFORBIDDEN otherwise.
func (p *Principal) Require(s Scope) error {
	switch {
	case p == nil:
		return ErrUnauthorized
	case !p.Has(s):
		return Errorf(EFORBIDDEN, "this key lacks scope %q", s)
	}
	return nil
}

// NarrowFilter restricts f to what p may read. It requires scope read (or
// audit, which reads everything). A tenant-bound reader gets f.Tenant set
// to its tenant; a filter naming another tenant is refused with EFORBIDDEN
// rather than answered with an empty page, so that a mistaken client
// learns its mistake (the answer says nothing about the other tenant).
// Cursors are positions, not grants: a cursor from another tenant's page
// only resumes within the narrowed filter.
func (p *Principal) NarrowFilter(f *Filter) error {
	if p.Has(ScopeAudit) {
		return nil
	}
	if err := p.Require(ScopeRead); err != nil {
		return err
	}
	if p.Tenant == "" {
		return nil
	}
	if f.Tenant != "" && f.Tenant != p.Tenant {
		return Errorf(EFORBIDDEN, "this key reads only tenant %q; it may not filter by tenant %q", p.Tenant, f.Tenant)
	}
	f.Tenant = p.Tenant
	return nil
}

// CheckVisible returns nil if p may read a record of the tenant, and
// ErrNotFound otherwise: another tenant's record is answered exactly as a
// missing one, so that ids do not leak across tenants.
func (p *Principal) CheckVisible(tenant string) error {
	if p.Has(ScopeAudit) {
		return nil
	}
	if err := p.Require(ScopeRead); err != nil {
		return err
	}
	if p.Tenant != "" && tenant != p.Tenant {
		return ErrNotFound
	}
	return nil
}

// GetVisible reads the record with the id from r if the principal in ctx
// may see it. Another tenant's record gets the very answer a missing one
// gets: an ENOTFOUND error naming the id. Every transport reads records by
// id through it.
func GetVisible(ctx context.Context, r Reader, id string) (*Entry, error) {
	e, err := r.Get(ctx, id)
	if err == nil {
		err = PrincipalFromContext(ctx).CheckVisible(e.Tenant)
	}
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ENOTFOUND, "no record has id %q", id)
	}
	return e, err
}

// CheckEvents applies p's write scope and bindings to a batch before it is
// prepared. It stamps each event with p's key id (the record's key_id), fills in the bound tenant and source.service where an event
// has none, and refuses, with EFORBIDDEN and the index of every offending
// item, an event that names another. A refused batch is left unchanged, so
// that the batch stays atomic.
func (p *Principal) CheckEvents(events []*Event) error {
	if err := p.Require(ScopeWrite); err != nil {
		return err
	}
	var bad []ItemError
	for i, e := range events {
		if p.Tenant != "" && e.Tenant != "" && e.Tenant != p.Tenant {
			bad = append(bad, ItemError{Index: i, Reason: fmt.Sprintf("this key writes only tenant %q, not %q", p.Tenant, e.Tenant)})
		}
		if p.Source != "" && e.Source.Service != "" && e.Source.Service != p.Source {
			bad = append(bad, ItemError{Index: i, Reason: fmt.Sprintf("this key writes only source.service %q, not %q", p.Source, e.Source.Service)})
		}
	}
	if len(bad) > 0 {
		msg := fmt.Sprintf("item %d: %s", bad[0].Index, bad[0].Reason)
		if len(bad) > 1 {
			msg = fmt.Sprintf("%d items break this key's bindings; first: %s", len(bad), msg)
		}
		return &Error{Code: EFORBIDDEN, Message: msg, Items: bad}
	}
	for _, e := range events {
		e.KeyID = p.KeyID
		if p.Tenant != "" {
			e.Tenant = p.Tenant
		}
		if p.Source != "" {
			e.Source.Service = p.Source
		}
	}
	return nil
}

// A RateLimitError refuses a request over a rate: a key's token bucket, or
// a client's failed authentications. Its code is ERATELIMITED; RetryAfter
// says when a retry can succeed, and Quota and Window describe the policy
// (for the RateLimit-Policy header).
type RateLimitError struct {
	Policy     string // "key" or "auth"
	Quota      int    // units allowed per Window
	Window     time.Duration
	RetryAfter time.Duration
	Message    string
}

func (e *RateLimitError) Error() string { return "trail: " + ERATELIMITED + ": " + e.Message }

// Unwrap gives ErrorCode and ErrorMessage the code and the message.
func (e *RateLimitError) Unwrap() error { return &Error{Code: ERATELIMITED, Message: e.Message} }

// CheckHost refuses an open principal of an authenticating server (--auth
// auto on loopback, open until the first key) a request addressed to a
// host other than localhost or a loopback IP. A web page that reaches
// 127.0.0.1 through DNS rebinding sends its own name as Host (or gRPC
// authority), and must not read records or make itself the first admin
// key. Every transport calls it after authenticating.
func (p *Principal) CheckHost(host string) error {
	if p == nil || !p.Open || LoopbackHost(host) {
		return nil
	}
	return Errorf(EFORBIDDEN, "this server is open only while no API key exists and only to requests for a loopback host (localhost, 127.0.0.1, [::1]), not %q", host)
}

// LoopbackHost reports whether a request's Host names the loopback
// interface: localhost or a loopback IP, with or without a port.
func LoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
