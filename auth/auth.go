package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/trail-audit/trail"
)

// Config configures an Authenticator. Keys is required.
type Config struct {
	Keys trail.KeyStore

	// CacheTTL is how long a key read from the store is trusted; default
	// and maximum 500 ms, so that a revocation or a new key reaches every
	// replica within a second.
	CacheTTL time.Duration

	// Now is the clock (default time.Now).
	Now func() time.Time

	// FailuresPerMinute is how many failed authentications a client
	// address may make a minute before it gets 429; default
	// MaxAuthFailures.
	FailuresPerMinute int

	// OpenWhileNoKeys makes every caller the open principal for as long
	// as the store holds no key: --auth auto on a loopback address. The
	// first key created ends it, on every replica within the cache TTL.
	OpenWhileNoKeys bool
}

// MaxCacheTTL bounds Config.CacheTTL.
const MaxCacheTTL = 500 * time.Millisecond

// touchEvery is how often a key's last use is written back to the store.
const touchEvery = time.Minute

// An Authenticator turns a request's Authorization header into a
// trail.Principal. It is safe for concurrent use.
type Authenticator struct {
	keys  trail.KeyStore
	ttl   time.Duration
	now   func() time.Time
	fails *FailureLimiter
	rates *KeyLimiter

	openWhileNoKeys bool

	mu      sync.Mutex
	hasKeys bool      // a key exists; keys are never deleted, so it stays true
	keysAt  time.Time // when hasKeys was last read as false
	cache   map[string]cachedKey
	touched map[string]time.Time
	secret  []byte // viewer-token secret, loaded once
}

type cachedKey struct {
	key *trail.Key // nil: no such key
	at  time.Time
}

// New returns an Authenticator over cfg.Keys.
func New(cfg Config) *Authenticator {
	if cfg.Keys == nil {
		panic("auth: New: Config needs Keys")
	}
	a := &Authenticator{
		keys: cfg.Keys, ttl: cfg.CacheTTL, now: cfg.Now,
		fails: NewFailureLimiter(cfg.FailuresPerMinute), rates: NewKeyLimiter(),
		cache: make(map[string]cachedKey), touched: make(map[string]time.Time),
		openWhileNoKeys: cfg.OpenWhileNoKeys,
	}
	if a.ttl <= 0 || a.ttl > MaxCacheTTL {
		a.ttl = MaxCacheTTL
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

// Authenticate returns the principal of header, an Authorization header
// value, sent from client (an address, for the failed-authentication
// limit, which an empty header is not counted against). Every bad
// credential, of whatever kind, is trail.ErrUnauthorized; a client past its
// failures gets a *trail.RateLimitError; a store that cannot be read gets
// EUNAVAILABLE (a 503 to retry, not a 401, since the key may well be good).
func (a *Authenticator) Authenticate(ctx context.Context, header, client string) (*trail.Principal, error) {
	now := a.now()
	if a.openWhileNoKeys {
		open, err := a.noKeys(ctx, now)
		if err != nil {
			return nil, err
		} else if open {
			return trail.OpenPrincipal, nil
		}
	}
	if err := a.fails.Check(client, now); err != nil {
		return nil, err
	}
	p, err := a.authenticate(ctx, header, now)
	if errors.Is(err, trail.ErrUnauthorized) && header != "" {
		// No credential at all guesses nothing, and is common: the viewer
		// asks /whoami without one on each page load, and behind a proxy
		// every client shares one address.
		a.fails.Fail(client, now)
	}
	return p, err
}

func (a *Authenticator) authenticate(ctx context.Context, header string, now time.Time) (*trail.Principal, error) {
	cred, err := ParseBearer(header)
	if err != nil {
		return nil, err
	}
	if IsViewerToken(cred) {
		secret, err := a.TokenSecret(ctx)
		if err != nil {
			return nil, err
		}
		return ParseToken(secret, cred, now)
	}
	id, secret, err := ParseKey(cred)
	if err != nil {
		return nil, err
	}
	k, err := a.key(ctx, id, now)
	if err != nil {
		return nil, err
	}
	if k == nil || !CheckSecret(k, secret) || k.State(now) != trail.KeyActive {
		return nil, trail.ErrUnauthorized
	}
	a.touch(ctx, id, now)
	return trail.PrincipalOf(k), nil
}

// noKeys reports whether the store holds no key, read at most once per
// cache TTL while it holds none.
func (a *Authenticator) noKeys(ctx context.Context, now time.Time) (bool, error) {
	a.mu.Lock()
	has, at := a.hasKeys, a.keysAt
	a.mu.Unlock()
	if has {
		return false, nil
	}
	if !at.IsZero() && now.Sub(at) < a.ttl && now.Sub(at) >= 0 {
		return true, nil
	}
	keys, err := a.keys.ListKeys(ctx)
	if err != nil {
		return false, unavailable("list keys", err)
	}
	a.mu.Lock()
	a.hasKeys, a.keysAt = len(keys) > 0, now
	a.mu.Unlock()
	return len(keys) == 0, nil
}

// KeyCreated tells a that a key now exists, so that a server open until the
// first key (OpenWhileNoKeys) closes at once on the replica that made it,
// rather than after the cache TTL.
func (a *Authenticator) KeyCreated() {
	a.mu.Lock()
	a.hasKeys = true
	a.mu.Unlock()
}

// key returns the key with the id (nil if there is none), from the cache
// if it was read less than the TTL ago.
func (a *Authenticator) key(ctx context.Context, id string, now time.Time) (*trail.Key, error) {
	a.mu.Lock()
	c, ok := a.cache[id]
	a.mu.Unlock()
	if ok && now.Sub(c.at) < a.ttl && now.Sub(c.at) >= 0 {
		return c.key, nil
	}
	k, err := a.keys.GetKey(ctx, id)
	if errors.Is(err, trail.ErrKeyNotFound) {
		k, err = nil, nil
	}
	if err != nil {
		return nil, unavailable("read key", err)
	}
	a.mu.Lock()
	// Unknown ids are cached too, so that a flood of made-up ids costs the
	// store one read per id and TTL; the table is dropped when it grows.
	if len(a.cache) >= maxTrackedClients {
		clear(a.cache)
	}
	a.cache[id] = cachedKey{key: k, at: now}
	a.mu.Unlock()
	return k, nil
}

// unavailable wraps the store's failure to answer op as EUNAVAILABLE, 503
// with Retry-After: the credential may well be good, so the client should
// retry rather than be refused or told the server broke. The store's error
// stays in the chain for the log. An error that already has a code, or a
// canceled request, keeps its own.
func unavailable(op string, err error) error {
	if trail.ErrorCode(err) != trail.EINTERNAL || errors.Is(err, context.Canceled) {
		return fmt.Errorf("auth: %s: %w", op, err)
	}
	return fmt.Errorf("auth: %s: %w: %w", op, trail.Errorf(trail.EUNAVAILABLE, "the key store cannot be read; retry later"), err)
}

// touch records the key's use in the store, at most once per touchEvery per
// replica. A failure to record it does not fail the request.
func (a *Authenticator) touch(ctx context.Context, id string, now time.Time) {
	a.mu.Lock()
	last, ok := a.touched[id]
	due := !ok || now.Sub(last) >= touchEvery
	if due {
		a.touched[id] = now
	}
	a.mu.Unlock()
	if due {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = a.keys.TouchKey(ctx, id, now)
	}
}

// Allow charges n units (events written, or 1 per request) to p's rate.
func (a *Authenticator) Allow(p *trail.Principal, n int) error {
	return a.rates.Allow(p, n, a.now())
}

// TokenSecret returns the viewer-token secret shared through the store,
// creating it on first use.
func (a *Authenticator) TokenSecret(ctx context.Context) ([]byte, error) {
	a.mu.Lock()
	s := a.secret
	a.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := a.keys.TokenSecret(ctx, []byte(randomString(SecretLen, base62)))
	if err != nil {
		return nil, unavailable("token secret", err)
	}
	a.mu.Lock()
	a.secret = s
	a.mu.Unlock()
	return s, nil
}

// MintToken returns a viewer token for tenant that lives ttl (0: the
// default), and when it expires.
func (a *Authenticator) MintToken(ctx context.Context, tenant string, ttl time.Duration) (string, time.Time, error) {
	secret, err := a.TokenSecret(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	return MintToken(secret, tenant, a.now(), ttl)
}
