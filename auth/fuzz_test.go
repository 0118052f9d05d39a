package auth_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; CI runs each target for a
// bounded time (scripts/fuzz.sh).

func FuzzParseBearer(f *testing.F) {
	f.Add("Bearer trail_abc123_" + strings.Repeat("A", auth.SecretLen))
	f.Fuzz(func(t *testing.T, h string) {
		cred, err := auth.ParseBearer(h)
		if err != nil {
			if !errors.Is(err, trail.ErrUnauthorized) {
				t.Fatalf("ParseBearer(%q): got %v, want ErrUnauthorized", h, err)
			}
			return
		}
		if cred == "" || strings.ContainsAny(cred, " \t\r\n") || len(cred) > 2048 {
			t.Fatalf("ParseBearer(%q): got credential %q", h, cred)
		}
		again, err := auth.ParseBearer("Bearer " + cred)
		if err != nil || again != cred {
			t.Fatalf("ParseBearer(Bearer %q): got %q, %v; want it back", cred, again, err)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	f.Add(auth.FormatKey("abc123", strings.Repeat("z", auth.SecretLen)))
	f.Fuzz(func(t *testing.T, key string) {
		id, secret, err := auth.ParseKey(key)
		if err != nil {
			if !errors.Is(err, trail.ErrUnauthorized) {
				t.Fatalf("ParseKey(%q): got %v, want ErrUnauthorized", key, err)
			}
			return
		}
		if auth.FormatKey(id, secret) != key || trail.ValidateKeyID(id) != nil || len(secret) != auth.SecretLen {
			t.Fatalf("ParseKey(%q): got id %q secret %q, which do not format back to it", key, id, secret)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	secret := []byte("fuzzing secret, fuzzing secret!!")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tok, _, err := auth.MintToken(secret, "acme", now, time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok, "acme")
	f.Fuzz(func(t *testing.T, tok, tenant string) {
		// Whatever the input, a token parses only if this server signed it.
		if p, err := auth.ParseToken(secret, tok, now); err == nil {
			if !p.Viewer || p.Tenant == "" || p.Has(trail.ScopeWrite) || p.Has(trail.ScopeAudit) {
				t.Fatalf("ParseToken(%q): got principal %+v, want a read-only viewer", tok, p)
			}
		} else if !errors.Is(err, trail.ErrUnauthorized) {
			t.Fatalf("ParseToken(%q): got %v, want ErrUnauthorized", tok, err)
		}
		// And every token minted for a tenant parses back to that tenant.
		if tenant == "" {
			return
		}
		mine, _, err := auth.MintToken(secret, tenant, now, time.Minute)
		if !utf8.ValidString(tenant) || len(tenant) > 1024 {
			if trail.ErrorCode(err) != trail.EINVALID {
				t.Fatalf("MintToken(%q): got %v, want EINVALID", tenant, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("MintToken(%q): %v", tenant, err)
		}
		p, err := auth.ParseToken(secret, mine, now)
		if err != nil || p.Tenant != tenant {
			t.Fatalf("ParseToken of a token for %q: got %+v, %v", tenant, p, err)
		}
	})
}
