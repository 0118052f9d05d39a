package auth

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/trail-audit/trail"
	"golang.org/x/time/rate"
)

// KeyLimiter holds one token bucket per key or viewer token: rate events
// per second with a burst of twice as many (trail.Key.Rate, ViewerRate).
// Buckets live in this process, so a rate holds per replica
// (docs/SCALING.md).
type KeyLimiter struct {
	mu  sync.Mutex
	lim map[string]*rate.Limiter
}

// NewKeyLimiter returns an empty KeyLimiter.
func NewKeyLimiter() *KeyLimiter { return &KeyLimiter{lim: make(map[string]*rate.Limiter)} }

// Allow takes n units (events, or 1 for a request that carries none) from
// p's bucket at now. It returns nil if p has no rate, and a
// *trail.RateLimitError saying when to retry if the bucket holds too few.
// A batch larger than the burst is let through when the bucket is full, and
// empties it, so that no batch is refused forever.
func (l *KeyLimiter) Allow(p *trail.Principal, n int, now time.Time) error {
	id, policy, what := "", "key", "key"
	switch {
	case p == nil || p.Rate <= 0:
		return nil
	case p.KeyID != "":
		id = p.KeyID
	case p.TokenID != "":
		// Tokens and keys share the table; the prefix keeps their ids apart.
		id, policy, what = "token:"+p.TokenID, "viewer", "viewer token"
	default:
		return nil
	}
	burst := max(1, int(math.Ceil(2*p.Rate)))
	lim := l.limiter(id, p.Rate, burst, now)
	n = min(max(n, 1), burst)
	r := lim.ReserveN(now, n)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return &trail.RateLimitError{
			Policy: policy, Quota: max(1, int(math.Ceil(p.Rate))), Window: time.Second, RetryAfter: d,
			Message: fmt.Sprintf("this %s is limited to %g events/s (burst %d); retry after %s", what, p.Rate, burst, d.Round(time.Millisecond)),
		}
	}
	return nil
}

// limiter returns id's bucket. Every token minted adds one, so past
// maxTrackedClients the full buckets are forgotten: one made again later
// starts full, as they were.
func (l *KeyLimiter) limiter(id string, r float64, burst int, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.lim[id]
	if !ok || lim.Limit() != rate.Limit(r) {
		if !ok && len(l.lim) >= maxTrackedClients {
			for k, x := range l.lim {
				if x.TokensAt(now) >= float64(x.Burst()) {
					delete(l.lim, k)
				}
			}
		}
		lim = rate.NewLimiter(rate.Limit(r), burst)
		l.lim[id] = lim
	}
	return lim
}

// Failed authentications a client address may make per minute.
const (
	MaxAuthFailures   = 20
	authFailureWindow = time.Minute
	// maxTrackedClients bounds the failure table; past it, clients whose
	// buckets have refilled are forgotten.
	maxTrackedClients = 10000
)

// FailureLimiter limits failed authentications per client address, so that
// keys cannot be guessed at speed: past its limit a minute (default
// MaxAuthFailures), every request from the address gets 429 until its
// bucket refills.
type FailureLimiter struct {
	perMinute int
	mu        sync.Mutex
	lim       map[string]*rate.Limiter
}

// NewFailureLimiter returns an empty FailureLimiter that allows perMinute
// failures a minute per address (MaxAuthFailures if perMinute <= 0).
func NewFailureLimiter(perMinute int) *FailureLimiter {
	if perMinute <= 0 {
		perMinute = MaxAuthFailures
	}
	return &FailureLimiter{perMinute: perMinute, lim: make(map[string]*rate.Limiter)}
}

func (l *FailureLimiter) limiter(client string, now time.Time, create bool) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.lim[client]
	if lim == nil && create {
		if len(l.lim) >= maxTrackedClients {
			for c, x := range l.lim {
				if x.TokensAt(now) >= float64(l.perMinute) {
					delete(l.lim, c)
				}
			}
		}
		lim = rate.NewLimiter(rate.Limit(float64(l.perMinute)/authFailureWindow.Seconds()), l.perMinute)
		l.lim[client] = lim
	}
	return lim
}

// Check returns a *trail.RateLimitError if client has used up its failures.
func (l *FailureLimiter) Check(client string, now time.Time) error {
	lim := l.limiter(client, now, false)
	if lim == nil {
		return nil
	}
	if tokens := lim.TokensAt(now); tokens < 1 {
		wait := time.Duration((1 - tokens) * float64(authFailureWindow) / float64(l.perMinute))
		return &trail.RateLimitError{
			Policy: "auth", Quota: l.perMinute, Window: authFailureWindow, RetryAfter: wait,
			Message: fmt.Sprintf("too many failed authentications from this address (limit %d a minute)", l.perMinute),
		}
	}
	return nil
}

// Fail records one failed authentication by client.
func (l *FailureLimiter) Fail(client string, now time.Time) {
	l.limiter(client, now, true).AllowN(now, 1)
}
