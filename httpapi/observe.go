package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/trail-audit/trail"
)

// An Observer is told of every answered request, authentication failure
// and rate-limited request, for metrics; *metrics.Metrics implements it.
// Its methods run on the request path: they must be quick and not block.
type Observer interface {
	// Request reports an answered request. route is the matched pattern
	// without its method ("/logs/{id}"), or "" if none matched.
	Request(route, method string, status int, d time.Duration)
	// AuthFailed reports a request refused with 401.
	AuthFailed()
	// RateLimited reports a request refused with 429 under a policy
	// ("key" or "auth", trail.RateLimitError.Policy).
	RateLimited(policy string)
	// AddTailSubscribers adds delta (+1 on connect, -1 on disconnect) to
	// the count of live-tail subscribers.
	AddTailSubscribers(delta int)
}

type nopObserver struct{}

func (nopObserver) Request(string, string, int, time.Duration) {}
func (nopObserver) AuthFailed()                                {}
func (nopObserver) RateLimited(string)                         {}
func (nopObserver) AddTailSubscribers(int)                     {}

// observeRefusal tells the observer about an authentication failure or a
// rate limit among err.
func (s *server) observeRefusal(err error) {
	switch trail.ErrorCode(err) {
	case trail.EUNAUTHORIZED:
		s.obs.AuthFailed()
	case trail.ERATELIMITED:
		policy := "key"
		var rl *trail.RateLimitError
		if errors.As(err, &rl) && rl.Policy != "" {
			policy = rl.Policy
		}
		s.obs.RateLimited(policy)
	}
}

// routeOf returns the route label of a request the mux has matched: its
// pattern without the method, never the raw path, so that the label's
// values stay few.
func routeOf(r *http.Request) string {
	p := r.Pattern
	if i := strings.IndexByte(p, ' '); i >= 0 {
		p = p[i+1:]
	}
	return p
}

// handleMetrics serves the Prometheus metrics (Config.Metrics).
func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		s.error(w, r, trail.Errorf(trail.ENOTFOUND, "metrics are not enabled on this server"))
		return
	}
	s.metrics.ServeHTTP(w, r)
}
