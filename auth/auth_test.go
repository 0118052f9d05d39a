package auth_test

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
	"github.com/trail-audit/trail/sqlite"
)

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// MustOpenKeys opens a fresh SQLite store to hold keys.
func MustOpenKeys(tb testing.TB) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(tb.TempDir(), "trail.db")})
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// MustCreateKey stores a key made by edit from an unbound write,read key,
// and returns the key a client sends.
func MustCreateKey(tb testing.TB, s trail.KeyStore, now time.Time, edit func(k *trail.Key)) string {
	tb.Helper()
	id, secret := auth.NewKeyID(), auth.NewSecret()
	k := &trail.Key{ID: id, Name: "test", Scopes: []trail.Scope{trail.ScopeWrite, trail.ScopeRead},
		Created: now, Hash: auth.HashSecret(secret)}
	if edit != nil {
		edit(k)
	}
	if err := s.CreateKey(tb.Context(), k); err != nil {
		tb.Fatalf("CreateKey: %v", err)
	}
	return auth.FormatKey(id, secret)
}

func TestKeyFormat(t *testing.T) {
	id, secret := auth.NewKeyID(), auth.NewSecret()
	if len(secret) != auth.SecretLen {
		t.Fatalf("secret length: got %d, want %d", len(secret), auth.SecretLen)
	}
	key := auth.FormatKey(id, secret)
	gotID, gotSecret, err := auth.ParseKey(key)
	if err != nil || gotID != id || gotSecret != secret {
		t.Fatalf("ParseKey(%q): got %q, %q, %v; want %q, %q", key, gotID, gotSecret, err, id, secret)
	}
	if auth.NewSecret() == secret || auth.NewKeyID() == id {
		t.Fatalf("two fresh secrets or ids are equal")
	}
	for _, bad := range []string{
		"", "trail_", "trail_" + id, "trail__" + secret, "Trail_" + id + "_" + secret,
		"trail_" + id + "_" + secret[1:], "trail_" + id + "_" + secret + "x",
		"trail_" + strings.ToUpper(id) + "_" + secret, "trail_" + id + "_" + secret[1:] + "-",
		"trail_" + id + "_" + secret[1:] + "_",
	} {
		if _, _, err := auth.ParseKey(bad); !errors.Is(err, trail.ErrUnauthorized) {
			t.Errorf("ParseKey(%q): got %v, want ErrUnauthorized", bad, err)
		}
	}
}

func TestParseBearer(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"Bearer abc", "abc"},
		{"bearer abc", "abc"},
		{"BEARER   abc.def-ghi_jkl~m+n/o==", "abc.def-ghi_jkl~m+n/o=="},
		{"", ""},
		{"Bearer", ""},
		{"Bearer ", ""},
		{"Basic dXNlcjpwYXNz", ""},
		{"Bearer a b", ""},
		{"Bearer a=b", ""},
		{"Bearer a\x00", ""},
		{"Bearer " + strings.Repeat("a", 4096), ""},
	} {
		got, err := auth.ParseBearer(tt.in)
		if tt.want == "" {
			if !errors.Is(err, trail.ErrUnauthorized) {
				t.Errorf("ParseBearer(%.40q): got %q, %v; want ErrUnauthorized", tt.in, got, err)
			}
		} else if err != nil || got != tt.want {
			t.Errorf("ParseBearer(%q): got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestViewerToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tok, exp, err := auth.MintToken(secret, "acme", now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(auth.DefaultTokenTTL); !exp.Equal(want) {
		t.Errorf("expiry: got %s, want %s", exp, want)
	}
	if !auth.IsViewerToken(tok) {
		t.Errorf("IsViewerToken(%q): got false, want true", tok)
	}
	p, err := auth.ParseToken(secret, tok, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	if !p.Viewer || p.Tenant != "acme" || p.Has(trail.ScopeWrite) || !p.Has(trail.ScopeRead) {
		t.Errorf("principal: got %+v, want a read-only viewer of acme", p)
	}
	// A token issued in the future, beyond the replicas' clock skew, was
	// minted by a wrong clock or a leaked secret: it would outlive its TTL.
	future, _, err := auth.MintToken(secret, "acme", now.Add(auth.MaxClockSkew+time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.ParseToken(secret, future, now); !errors.Is(err, trail.ErrUnauthorized) {
		t.Errorf("issued %s ahead: got %v, want ErrUnauthorized", auth.MaxClockSkew+time.Second, err)
	}
	skewed, _, _ := auth.MintToken(secret, "acme", now.Add(auth.MaxClockSkew), 0)
	if _, err := auth.ParseToken(secret, skewed, now); err != nil {
		t.Errorf("issued %s ahead (within the skew): got %v, want nil", auth.MaxClockSkew, err)
	}
	i := strings.LastIndexByte(tok, '.')
	flipped := []byte(tok)
	flipped[i-3] ^= 1
	for name, tt := range map[string]struct {
		secret []byte
		tok    string
		at     time.Time
	}{
		"expired":      {secret, tok, exp},
		"other secret": {[]byte("another secret, another server!!"), tok, now},
		"tampered":     {secret, string(flipped), now},
		"no mac":       {secret, tok[:i], now},
		"a key":        {secret, auth.FormatKey("abc", auth.NewSecret()), now},
	} {
		if _, err := auth.ParseToken(tt.secret, tt.tok, tt.at); !errors.Is(err, trail.ErrUnauthorized) {
			t.Errorf("%s: got %v, want ErrUnauthorized", name, err)
		}
	}
	for _, ttl := range []time.Duration{-time.Second, time.Nanosecond, 500 * time.Millisecond, auth.MaxTokenTTL + time.Second} {
		if _, _, err := auth.MintToken(secret, "acme", now, ttl); trail.ErrorCode(err) != trail.EINVALID {
			t.Errorf("MintToken with ttl %s: got %v, want EINVALID", ttl, err)
		}
	}
	if _, _, err := auth.MintToken(secret, "", now, 0); trail.ErrorCode(err) != trail.EINVALID {
		t.Errorf("MintToken without a tenant: got %v, want EINVALID", err)
	}
}

func TestKeyLimiter(t *testing.T) {
	l := auth.NewKeyLimiter()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := &trail.Principal{KeyID: "k", Rate: 10} // burst 20
	if err := l.Allow(p, 15, now); err != nil {
		t.Fatalf("15 of a burst of 20: got %v, want nil", err)
	}
	err := l.Allow(p, 10, now)
	var rl *trail.RateLimitError
	if !errors.As(err, &rl) || trail.ErrorCode(err) != trail.ERATELIMITED {
		t.Fatalf("10 more: got %v, want a RateLimitError", err)
	}
	if rl.RetryAfter != 500*time.Millisecond || rl.Quota != 10 || rl.Window != time.Second {
		t.Errorf("RateLimitError: got %+v, want RetryAfter 500ms, Quota 10, Window 1s", rl)
	}
	// The refused request took nothing: 5 remain.
	if err := l.Allow(p, 5, now); err != nil {
		t.Errorf("the 5 left: got %v, want nil", err)
	}
	// A batch over the burst passes once the bucket is full.
	if err := l.Allow(p, 1000, now.Add(2*time.Second)); err != nil {
		t.Errorf("a batch over the burst with a full bucket: got %v, want nil", err)
	}
	if err := l.Allow(&trail.Principal{KeyID: "free"}, 1e6, now); err != nil {
		t.Errorf("a key without a rate: got %v, want nil", err)
	}
}

func TestFailureLimiter(t *testing.T) {
	l := auth.NewFailureLimiter(0)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < auth.MaxAuthFailures; i++ {
		if err := l.Check("10.0.0.1", now); err != nil {
			t.Fatalf("after %d failures: got %v, want nil", i, err)
		}
		l.Fail("10.0.0.1", now)
	}
	if err := l.Check("10.0.0.1", now); trail.ErrorCode(err) != trail.ERATELIMITED {
		t.Fatalf("after %d failures: got %v, want ERATELIMITED", auth.MaxAuthFailures, err)
	}
	if err := l.Check("10.0.0.2", now); err != nil {
		t.Fatalf("another client: got %v, want nil", err)
	}
	if err := l.Check("10.0.0.1", now.Add(3*time.Second)); err != nil {
		t.Fatalf("3 s later: got %v, want nil", err)
	}
}

func TestAuthenticate(t *testing.T) {
	s := MustOpenKeys(t)
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	a := auth.New(auth.Config{Keys: s, Now: clk.Now})
	ctx := t.Context()
	now := clk.Now()
	good := MustCreateKey(t, s, now, func(k *trail.Key) { k.Tenant, k.Source, k.Rate = "acme", "billing", 5 })
	expired := MustCreateKey(t, s, now.Add(-time.Hour), func(k *trail.Key) { k.Expires = now })
	revoked := MustCreateKey(t, s, now, nil)
	rid, _, _ := auth.ParseKey(revoked)
	if _, err := s.RevokeKey(ctx, rid, now); err != nil {
		t.Fatal(err)
	}
	gid, gsecret, _ := auth.ParseKey(good)

	p, err := a.Authenticate(ctx, "Bearer "+good, "c1")
	if err != nil {
		t.Fatalf("good key: %v", err)
	}
	if p.KeyID != gid || p.Tenant != "acme" || p.Source != "billing" || p.Rate != 5 || !p.Has(trail.ScopeWrite) {
		t.Errorf("principal: got %+v, want key %s bound to acme and billing", p, gid)
	}
	if k, _ := s.GetKey(ctx, gid); !k.LastUsed.Equal(now) {
		t.Errorf("last use: got %s, want %s", k.LastUsed, now)
	}
	for name, h := range map[string]string{
		"none": "", "malformed": "Bearer nonsense", "unknown": "Bearer " + auth.FormatKey("nosuchkey", gsecret),
		"wrong secret": "Bearer " + auth.FormatKey(gid, auth.NewSecret()), "expired": "Bearer " + expired,
		"revoked": "Bearer " + revoked, "forged token": "Bearer trailtok.e30.AAAA",
	} {
		if _, err := a.Authenticate(ctx, h, "c2"); err != trail.ErrUnauthorized {
			t.Errorf("%s: got %v, want ErrUnauthorized itself", name, err)
		}
	}

	// A revocation reaches a replica that has the key cached within the
	// cache's TTL.
	if _, err := s.RevokeKey(ctx, gid, now); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "Bearer "+good, "c1"); err != nil {
		t.Errorf("revoked key still cached: got %v, want nil", err)
	}
	clk.Add(auth.MaxCacheTTL)
	if _, err := a.Authenticate(ctx, "Bearer "+good, "c1"); !errors.Is(err, trail.ErrUnauthorized) {
		t.Errorf("revoked key after the cache TTL: got %v, want ErrUnauthorized", err)
	}
}

func TestAuthenticateViewerToken(t *testing.T) {
	s := MustOpenKeys(t)
	a, b := auth.New(auth.Config{Keys: s}), auth.New(auth.Config{Keys: s})
	tok, _, err := a.MintToken(t.Context(), "acme", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Another replica over the same store verifies it.
	p, err := b.Authenticate(t.Context(), "Bearer "+tok, "c1")
	if err != nil || !p.Viewer || p.Tenant != "acme" {
		t.Fatalf("token on another replica: got %+v, %v; want a viewer of acme", p, err)
	}
}

// TestViewerTokenRate checks that each viewer token has its own bucket of
// auth.ViewerRate requests a second: a token has no key id to charge, and
// a leaked one must not read at unbounded speed.
func TestViewerTokenRate(t *testing.T) {
	s := MustOpenKeys(t)
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	a := auth.New(auth.Config{Keys: s, Now: clk.Now})
	principal := func() *trail.Principal {
		t.Helper()
		tok, _, err := a.MintToken(t.Context(), "acme", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.Authenticate(t.Context(), "Bearer "+tok, "c1")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, other := principal(), principal()
	burst := int(2 * auth.ViewerRate)
	for i := range burst {
		if err := a.Allow(p, 1); err != nil {
			t.Fatalf("request %d of a burst of %d: got %v, want nil", i, burst, err)
		}
	}
	var rl *trail.RateLimitError
	if err := a.Allow(p, 1); !errors.As(err, &rl) || rl.Policy != "viewer" {
		t.Fatalf("request %d: got %v, want a RateLimitError of policy viewer", burst+1, err)
	}
	if err := a.Allow(other, 1); err != nil {
		t.Errorf("another token: got %v, want nil", err)
	}
	clk.Add(time.Second)
	if err := a.Allow(p, 1); err != nil {
		t.Errorf("a second later: got %v, want nil", err)
	}
}

// TestAuthenticateStoreDown checks that a store that cannot be read makes
// Authenticate answer EUNAVAILABLE (503, retry), as its comment promises:
// not 401, since the credential may well be good, and not 500.
func TestAuthenticateStoreDown(t *testing.T) {
	for name, tt := range map[string]struct {
		cfg    auth.Config
		header func(s *sqlite.Store) string
	}{
		"open until the first key": {auth.Config{OpenWhileNoKeys: true}, func(*sqlite.Store) string { return "" }},
		"a key":                    {auth.Config{}, func(s *sqlite.Store) string { return "Bearer " + MustCreateKey(t, s, time.Now(), nil) }},
		"a viewer token":           {auth.Config{}, func(*sqlite.Store) string { return "Bearer trailtok.e30.AAAA" }},
	} {
		s := MustOpenKeys(t)
		h := tt.header(s)
		tt.cfg.Keys = s
		a := auth.New(tt.cfg)
		s.Close()
		if _, err := a.Authenticate(t.Context(), h, "c1"); trail.ErrorCode(err) != trail.EUNAVAILABLE {
			t.Errorf("%s with the store closed: got %v (code %s), want EUNAVAILABLE", name, err, trail.ErrorCode(err))
		}
	}
}

func TestAuthenticateFailureLimit(t *testing.T) {
	s := MustOpenKeys(t)
	a := auth.New(auth.Config{Keys: s})
	good := MustCreateKey(t, s, time.Now(), nil)
	for i := 0; i < auth.MaxAuthFailures; i++ {
		if _, err := a.Authenticate(t.Context(), "Bearer trail_guess_"+auth.NewSecret(), "10.0.0.9"); !errors.Is(err, trail.ErrUnauthorized) {
			t.Fatalf("guess %d: got %v, want ErrUnauthorized", i, err)
		}
	}
	_, err := a.Authenticate(t.Context(), "Bearer "+good, "10.0.0.9")
	if trail.ErrorCode(err) != trail.ERATELIMITED {
		t.Fatalf("good key after %d failures: got %v, want ERATELIMITED", auth.MaxAuthFailures, err)
	}
	if _, err := a.Authenticate(t.Context(), "Bearer "+good, "10.0.0.10"); err != nil {
		t.Fatalf("good key from another address: got %v, want nil", err)
	}
	// A request with no credential at all guesses nothing: the viewer asks
	// /whoami without one on every page load, and behind a proxy every
	// client shares one address.
	for i := 0; i < 2*auth.MaxAuthFailures; i++ {
		if _, err := a.Authenticate(t.Context(), "", "10.0.0.11"); !errors.Is(err, trail.ErrUnauthorized) {
			t.Fatalf("no credential %d: got %v, want ErrUnauthorized", i, err)
		}
	}
	if _, err := a.Authenticate(t.Context(), "Bearer "+good, "10.0.0.11"); err != nil {
		t.Fatalf("good key after %d requests without a credential: got %v, want nil", 2*auth.MaxAuthFailures, err)
	}
}

// BenchmarkAuthenticate measures the per-request cost of a key in the
// cache: header parsing, the SHA-256 of the secret, the constant-time
// compare and the principal.
func BenchmarkAuthenticate(b *testing.B) {
	s := MustOpenKeys(b)
	a := auth.New(auth.Config{Keys: s})
	h := "Bearer " + MustCreateKey(b, s, time.Now(), nil)
	ctx := b.Context()
	if _, err := a.Authenticate(ctx, h, "c"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, h, "c"); err != nil {
			b.Fatal(err)
		}
	}
}
