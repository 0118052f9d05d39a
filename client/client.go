// Package client is the Go SDK for trail's HTTP API (docs/API.md).
//
// It pushes events with client-chosen ids (UUIDv7), so that a retry after a
// timeout, a dropped connection or a 503 can never store an event twice: the
// server answers a replay with the original receipt. It reads records,
// pages and streams queries, and fetches and checks Merkle proofs and signed
// checkpoints.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/trail-audit/trail"
)

// Defaults for the retry policy.
const (
	DefaultRetries    = 8
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second

	// maxRetryAfter caps what a server's Retry-After can make a client wait
	// for one attempt; the caller's context bounds the whole call.
	maxRetryAfter = 60 * time.Second
	// maxErrorBody bounds how much of an error answer is read.
	maxErrorBody = 64 << 10
)

// A Client talks to one trail server (or a load balancer in front of
// several). It is safe for concurrent use.
type Client struct {
	base       *url.URL
	hc         *http.Client
	retries    int
	minBackoff time.Duration
	maxBackoff time.Duration
	newID      func() string
	userAgent  string
	observe    func(Attempt)
	tlsConfig  *tls.Config    // from WithTLSConfig
	caPool     *x509.CertPool // from WithCAFile
	optErr     error          // an option that failed; every request reports it
	token      string         // sent as Authorization: Bearer
}

// An Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through hc.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithRetries sets how many times a failed attempt is retried (0: never).
func WithRetries(n int) Option {
	return func(c *Client) { c.retries = max(n, 0) }
}

// WithBackoff sets the exponential backoff between retries: the first wait
// is about lo, and no wait is longer than hi (except a server's Retry-After).
func WithBackoff(lo, hi time.Duration) Option {
	return func(c *Client) { c.minBackoff, c.maxBackoff = lo, max(lo, hi) }
}

// WithIDs sets the function that gives an id to each pushed event that has
// none. nil turns id assignment off: the server then chooses ids, and a push
// is retried only when the server answered that it stored nothing.
func WithIDs(newID func() string) Option {
	return func(c *Client) { c.newID = newID }
}

// WithToken makes the client authenticate with an API key or a viewer
// token, sent as "Authorization: Bearer <token>" on every request.
func WithToken(token string) Option {
	return func(c *Client) { c.token = token }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// WithObserver makes the client call fn after every HTTP attempt, including
// the ones it retries. Load generators use it to count answers by status.
func WithObserver(fn func(Attempt)) Option {
	return func(c *Client) { c.observe = fn }
}

// An Attempt describes one HTTP exchange.
type Attempt struct {
	Method   string
	Path     string
	Status   int   // 0 if no answer arrived
	Err      error // the transport error, if any
	Duration time.Duration
	Retry    int // 0 for the first attempt
}

// NewID returns a new UUIDv7: unique, and ordered by creation time, which
// keeps the server's id index append-mostly.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// New returns a client for the server at baseURL, such as
// "http://127.0.0.1:8080". A base path ("http://host/trail") is kept.
func New(baseURL string, opts ...Option) *Client {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		// Keep New infallible; every request reports the bad URL.
		u = &url.URL{Scheme: "invalid", Opaque: baseURL}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	// A client usually sends many requests to one host at once: keep their
	// connections rather than open (and leave in TIME_WAIT) new ones.
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 1024
	t.ResponseHeaderTimeout = 2 * time.Minute
	c := &Client{
		base:       u,
		hc:         &http.Client{Transport: t},
		retries:    DefaultRetries,
		minBackoff: DefaultMinBackoff,
		maxBackoff: DefaultMaxBackoff,
		newID:      NewID,
		userAgent:  "trail-client",
	}
	for _, o := range opts {
		o(c)
	}
	if (c.tlsConfig != nil || c.caPool != nil) && c.optErr == nil {
		c.optErr = c.applyTLS()
	}
	return c
}

// URL returns the server's base URL.
func (c *Client) URL() string { return c.base.String() }

// Error is an error answer from the server: an RFC 9457 problem+json
// document, or a bare status if the answer was not one (from a proxy, say).
//
// It unwraps to a *trail.Error with the code for its status, so that
// trail.ErrorCode works on it and errors.Is(err, trail.ErrNotFound) holds
// for a 404.
type Error struct {
	Status int
	Type   string
	Title  string
	Detail string
	// ProblemCode is the problem's "code" member: a trail error code
	// (trail.EINVALID, ...) or one the HTTP layer adds ("not_covered").
	ProblemCode string
	// RequestID ties the answer to the server's log line about it.
	RequestID string
	// Items lists the bad events of a rejected batch, by index.
	Items []trail.ItemError
	// RetryAfter is the server's Retry-After, if it sent one.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	title := e.Title
	if title == "" {
		title = http.StatusText(e.Status)
	}
	s := fmt.Sprintf("%d %s", e.Status, title)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	for i, it := range e.Items {
		if i == 5 {
			s += fmt.Sprintf(" (and %d more)", len(e.Items)-i)
			break
		}
		s += fmt.Sprintf("; item %d: %s", it.Index, it.Reason)
	}
	return s
}

// Code returns the trail error code (trail.EINVALID, ...) of the answer:
// the problem's own if it is one of trail's, else the one its status means.
func (e *Error) Code() string {
	switch e.ProblemCode {
	case trail.EINVALID, trail.ETOOLARGE, trail.EUNSUPPORTED, trail.ENOTFOUND, trail.ECONFLICT, trail.EUNAVAILABLE, trail.EINTERNAL:
		return e.ProblemCode
	}
	switch e.Status {
	case http.StatusBadRequest:
		return trail.EINVALID
	case http.StatusRequestEntityTooLarge:
		return trail.ETOOLARGE
	case http.StatusUnsupportedMediaType:
		return trail.EUNSUPPORTED
	case http.StatusNotFound:
		return trail.ENOTFOUND
	case http.StatusConflict:
		return trail.ECONFLICT
	case http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout:
		return trail.EUNAVAILABLE
	}
	return trail.EINTERNAL
}

// Unwrap returns the error as a *trail.Error.
func (e *Error) Unwrap() error {
	return &trail.Error{Code: e.Code(), Message: e.Detail, Items: e.Items}
}

// Is reports whether target is a *trail.Error with e's code, so that the
// sentinels trail.ErrNotFound and trail.ErrUnavailable match.
func (e *Error) Is(target error) bool {
	var t *trail.Error
	return errors.As(target, &t) && t.Code == e.Code()
}

// errorFrom reads a non-2xx answer into an *Error and closes its body.
func errorFrom(resp *http.Response) error {
	defer resp.Body.Close()
	e := &Error{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header, time.Now())}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var p trail.Problem
	if (mt == "application/problem+json" || mt == "application/json") && json.Unmarshal(b, &p) == nil {
		e.Type, e.Title, e.Detail, e.Items = p.Type, p.Title, p.Detail, p.Errors
		e.ProblemCode, e.RequestID = p.Code, p.RequestID
	} else if s := strings.TrimSpace(string(b)); s != "" && len(s) < 512 {
		e.Detail = s
	}
	return e
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	return parseRetryAfter(h.Get("Retry-After"), now)
}

// parseRetryAfter parses a Retry-After value: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(n, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// request is one API call, possibly sent several times.
type request struct {
	method      string
	path        string // escaped, from "/"
	query       url.Values
	body        []byte
	contentType string
	accept      string
	header      http.Header // more request headers
	// idempotent says that sending the request again cannot change what
	// the server stores, so that it may be retried after a transport error
	// or a gateway's 502/504, not only after the server's own refusal.
	idempotent bool
	// once turns retries off: probes report the state now.
	once bool
}

// retryStatus reports whether an answer with the status may be retried:
// with 429 and 503 the server stored nothing; 502 and 504 come from a proxy
// that may have passed the request on, so they are retried only when
// repeating the request is harmless.
func retryStatus(status int, idempotent bool) bool {
	switch status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return true
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return idempotent
	}
	return false
}

// do sends r, retrying as the policy allows, and returns the last answer.
// The caller checks its status and closes its body.
func (c *Client) do(ctx context.Context, r *request) (*http.Response, error) {
	if c.optErr != nil {
		return nil, c.optErr
	}
	if c.base.Scheme != "http" && c.base.Scheme != "https" {
		return nil, fmt.Errorf("trail client: bad server URL %q: want http://host:port", c.base.Opaque)
	}
	u := *c.base
	unescaped, err := url.PathUnescape(r.path)
	if err != nil {
		return nil, fmt.Errorf("trail client: %s %s: %w", r.method, r.path, err)
	}
	u.Path = c.base.Path + unescaped
	u.RawPath = c.base.EscapedPath() + r.path
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	target := u.String()
	for attempt := 0; ; attempt++ {
		var body io.Reader
		if r.body != nil {
			body = bytes.NewReader(r.body)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, target, body)
		if err != nil {
			return nil, fmt.Errorf("trail client: %s %s: %w", r.method, r.path, err)
		}
		if r.body != nil {
			req.Header.Set("Content-Type", r.contentType)
		}
		if r.accept != "" {
			req.Header.Set("Accept", r.accept)
		}
		for k, vs := range r.header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		req.Header.Set("User-Agent", c.userAgent)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}

		start := time.Now()
		resp, err := c.hc.Do(req)
		if c.observe != nil {
			a := Attempt{Method: r.method, Path: r.path, Err: err, Duration: time.Since(start), Retry: attempt}
			if resp != nil {
				a.Status = resp.StatusCode
			}
			c.observe(a)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("trail client: %s %s: %w", r.method, r.path, ctx.Err())
			}
			wait, retry := c.RetryWait(attempt, 0, err, "", r.idempotent)
			if r.once || !retry {
				return nil, fmt.Errorf("trail client: %s %s: %w%s", r.method, r.path, err, tlsHint(err))
			}
			if err := sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("trail client: %s %s: %w", r.method, r.path, err)
			}
			continue
		}
		wait, retry := c.RetryWait(attempt, resp.StatusCode, nil, resp.Header.Get("Retry-After"), r.idempotent)
		if r.once || !retry {
			return resp, nil
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("trail client: %s %s: %w", r.method, r.path, err)
		}
	}
}

// RetryWait applies the client's retry policy, the one Push follows, to a
// request sent by other means: load generators write requests on
// connections of their own. attempt is the number of the attempt that
// failed (0 for the first); status is its answer's HTTP status, or 0 if err
// ended it in transport; retryAfter is the answer's Retry-After header.
// idempotent says that sending the request again cannot store anything
// twice. It reports whether to try again, and after how long.
func (c *Client) RetryWait(attempt, status int, err error, retryAfter string, idempotent bool) (time.Duration, bool) {
	if attempt >= c.retries {
		return 0, false
	}
	if status == 0 {
		if !idempotent || !retryableError(err) {
			return 0, false
		}
		return c.backoff(attempt, 0), true
	}
	if !retryStatus(status, idempotent) {
		return 0, false
	}
	return c.backoff(attempt, parseRetryAfter(retryAfter, time.Now())), true
}

// backoff returns how long to wait before retry number attempt+1: the
// server's Retry-After if it gave one, else exponential from minBackoff up
// to maxBackoff. Jitter spreads out clients that were refused together.
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := c.minBackoff << min(attempt, 30)
	if d <= 0 || d > c.maxBackoff {
		d = c.maxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	if retryAfter > 0 {
		// Honour the server, plus a little spread so that every refused
		// client does not come back in the same millisecond.
		return min(retryAfter, maxRetryAfter) + rand.N(c.minBackoff+1)
	}
	return d
}

// retryableError reports whether a transport error may be cured by trying
// again: connection refused or reset, a timeout, a dropped connection.
func retryableError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), tlsFailure(err):
		return false
	case errors.As(err, &oe), errors.As(err, &ne):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// Other transport failures (a server closing an idle connection
		// as it shuts down, a malformed answer from a dying peer).
		return !strings.Contains(ue.Err.Error(), "unsupported protocol scheme")
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// getJSON sends a GET and decodes a 200 JSON answer into v.
func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	resp, err := c.do(ctx, &request{method: http.MethodGet, path: path, query: q, accept: "application/json", idempotent: true})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errorFrom(resp)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("trail client: GET %s: decode answer: %w", path, err)
	}
	return nil
}

// getText sends a GET and returns a 200 answer's body.
func (c *Client) getText(ctx context.Context, path string, q url.Values) ([]byte, error) {
	return c.get(ctx, &request{method: http.MethodGet, path: path, query: q, idempotent: true})
}

func (c *Client) get(ctx context.Context, r *request) ([]byte, error) {
	path := r.path
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errorFrom(resp)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("trail client: GET %s: read answer: %w", path, err)
	}
	return b, nil
}
