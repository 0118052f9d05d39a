package trail

import (
	"context"
	"crypto/sha256"
	"slices"
	"strings"
	"time"
)

// A Scope is one right a key grants (DESIGN.md §8).
type Scope string

// Scopes a key may hold.
const (
	ScopeWrite Scope = "write" // POST /logs
	ScopeRead  Scope = "read"  // list, get, record proofs, tail
	ScopeAudit Scope = "audit" // export, consistency proofs, full verify; spans tenants
	ScopeAdmin Scope = "admin" // keys and viewer tokens
	// ScopeMetrics reads GET /metrics, which says how busy the service is
	// but holds no record: a scraper's key needs nothing else.
	ScopeMetrics Scope = "metrics"
)

// AllScopes lists every scope, in the order they are shown. A new scope
// is added here and nowhere else.
var AllScopes = []Scope{ScopeWrite, ScopeRead, ScopeAudit, ScopeAdmin, ScopeMetrics}

// ParseScopes parses a comma-separated list such as "write,read". It
// refuses unknown and repeated scopes and an empty list, and returns the
// scopes in AllScopes order.
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, f := range strings.Split(s, ",") {
		sc := Scope(strings.TrimSpace(f))
		if !slices.Contains(AllScopes, sc) {
			return nil, Errorf(EINVALID, "unknown scope %q; scopes are %s", sc, FormatScopes(AllScopes))
		}
		if slices.Contains(out, sc) {
			return nil, Errorf(EINVALID, "scope %q is given twice", sc)
		}
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b Scope) int { return slices.Index(AllScopes, a) - slices.Index(AllScopes, b) })
	return out, nil
}

// FormatScopes joins scopes with commas, the form ParseScopes reads.
func FormatScopes(scopes []Scope) string {
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, ",")
}

// KeyHash is the SHA-256 of a key's secret. A secret of 256 random bits
// needs no slow hash: there is nothing to guess from its hash.
type KeyHash [sha256.Size]byte

// Key is an API key as the store keeps it: everything but the secret, of
// which only the hash is kept. Keys are never deleted; revocation is a
// one-way flag.
type Key struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Scopes []Scope `json:"scopes"`
	// Tenant, if set, binds the key to one tenant: it writes only that
	// tenant's events and reads only its records.
	Tenant string `json:"tenant,omitempty"`
	// Source, if set, binds a writer to one source.service.
	Source string `json:"source,omitempty"`
	// Rate is the key's limit in events (or requests) per second, with a
	// burst of twice as many; 0 means no limit.
	Rate     float64   `json:"rate,omitempty"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`   // zero: never
	Revoked  time.Time `json:"revoked,omitzero"`   // zero: not revoked
	LastUsed time.Time `json:"last_used,omitzero"` // zero: never used; updated at most once a minute
	Hash     KeyHash   `json:"-"`
}

// Key states, as Key.State reports them.
const (
	KeyActive  = "active"
	KeyExpired = "expired"
	KeyRevoked = "revoked"
)

// State says whether k may be used at now.
func (k *Key) State(now time.Time) string {
	switch {
	case !k.Revoked.IsZero():
		return KeyRevoked
	case !k.Expires.IsZero() && !now.Before(k.Expires):
		return KeyExpired
	}
	return KeyActive
}

// MaxKeyIDLen bounds a key id.
const MaxKeyIDLen = 32

// ValidateKeyID checks that id is 1 to 32 lowercase letters and digits, so
// that it cannot contain the "_" that separates a key's parts.
func ValidateKeyID(id string) error {
	if id == "" || len(id) > MaxKeyIDLen {
		return Errorf(EINVALID, "key id must be 1 to %d characters", MaxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return Errorf(EINVALID, "key id may hold only lowercase letters and digits, not %q", id)
		}
	}
	return nil
}

// Validate checks a key before it is stored. Audit and admin span tenants
// (a log does), so a tenant-bound key may hold neither.
func (k *Key) Validate() error {
	if err := ValidateKeyID(k.ID); err != nil {
		return err
	}
	if k.Name == "" || len(k.Name) > maxFieldLen {
		return Errorf(EINVALID, "key name must be 1 to %d bytes", maxFieldLen)
	}
	if len(k.Scopes) == 0 {
		return Errorf(EINVALID, "a key needs at least one scope; scopes are %s", FormatScopes(AllScopes))
	}
	if _, err := ParseScopes(FormatScopes(k.Scopes)); err != nil {
		return err
	}
	if k.Tenant != "" && (slices.Contains(k.Scopes, ScopeAudit) || slices.Contains(k.Scopes, ScopeAdmin)) {
		return Errorf(EINVALID, "scopes audit and admin span every tenant; a key bound to tenant %q cannot hold them", k.Tenant)
	}
	if len(k.Tenant) > maxFieldLen || len(k.Source) > maxFieldLen {
		return Errorf(EINVALID, "key bindings are limited to %d bytes", maxFieldLen)
	}
	if k.Rate < 0 {
		return Errorf(EINVALID, "key rate must be 0 (no limit) or positive, not %v", k.Rate)
	}
	if k.Created.IsZero() {
		return Errorf(EINVALID, "key has no creation time")
	}
	if !k.Expires.IsZero() && !k.Expires.After(k.Created) {
		return Errorf(EINVALID, "key expires (%s) before it is created (%s)", k.Expires.Format(time.RFC3339), k.Created.Format(time.RFC3339))
	}
	return nil
}

// ErrKeyNotFound means no key has the id.
var ErrKeyNotFound = &Error{Code: ENOTFOUND, Message: "no key has this id"}

// A KeyStore keeps API keys where every replica reads them: a table beside
// the records (SQLite) or a collection (MongoDB). Its writes are durable
// before they return, as record appends are.
//
// Keys are never deleted, and the only changes to a stored key are its
// revocation (once; a later revocation keeps the first time) and its last
// use (which only moves forward). The conformance tests are
// storetest.RunKeys.
type KeyStore interface {
	// CreateKey stores k. It returns an *Error with ECONFLICT if k.ID is
	// taken.
	CreateKey(ctx context.Context, k *Key) error

	// GetKey returns the key with the id, or ErrKeyNotFound.
	GetKey(ctx context.Context, id string) (*Key, error)

	// ListKeys returns every key, revoked and expired ones too, oldest
	// first.
	ListKeys(ctx context.Context) ([]*Key, error)

	// RevokeKey marks the key revoked at `at` unless it already is, and
	// returns it as stored. It returns ErrKeyNotFound if no key has the id.
	RevokeKey(ctx context.Context, id string, at time.Time) (*Key, error)

	// TouchKey records a use of the key at `at`, if that is later than the
	// stored last use. An unknown id is not an error.
	TouchKey(ctx context.Context, id string, at time.Time) error

	// TokenSecret returns the secret that signs viewer tokens. The first
	// call on a store stores candidate and returns it; every later call, on
	// any replica, returns that first secret.
	TokenSecret(ctx context.Context, candidate []byte) ([]byte, error)
}
