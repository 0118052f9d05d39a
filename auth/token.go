package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trail-audit/trail"
)

// Viewer tokens have this form (docs/API.md):
//
//	trailtok.<payload>.<mac>
//
// where payload is the unpadded base64url of the JSON object
// {"v":1,"tenant":T,"iat":unix,"exp":unix,"jti":random}, and mac is the
// unpadded base64url of HMAC-SHA256(secret, "trailtok." + payload). The
// secret is shared by every replica through the store
// (trail.KeyStore.TokenSecret), so any replica verifies a token without a
// store round trip.
const tokenPrefix = "trailtok."

// Viewer token lifetimes.
const (
	DefaultTokenTTL = 15 * time.Minute
	MaxTokenTTL     = time.Hour
)

// MaxClockSkew is how far ahead of this replica's clock a viewer token's
// issue time may be: another replica minted it, and clocks differ.
const MaxClockSkew = time.Minute

// ViewerRate is every viewer token's rate in requests a second, with a
// burst of twice as many (as a key's rate): ample for a person paging
// through the viewer, and a bound on what a leaked token can read.
const ViewerRate = 20

// maxTenantLen is the longest tenant an event may name.
const maxTenantLen = 1024

// tokenClaims is a viewer token's payload.
type tokenClaims struct {
	V      int    `json:"v"`
	Tenant string `json:"tenant"`
	IAT    int64  `json:"iat"`
	Exp    int64  `json:"exp"`
	JTI    string `json:"jti"`
}

// IsViewerToken reports whether cred has the form of a viewer token rather
// than a key.
func IsViewerToken(cred string) bool { return strings.HasPrefix(cred, tokenPrefix) }

// MintToken returns a viewer token for tenant that expires ttl after now
// (DefaultTokenTTL if ttl is 0; at most MaxTokenTTL), signed with secret.
func MintToken(secret []byte, tenant string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < time.Second || ttl > MaxTokenTTL {
		// Expiry is kept in whole seconds: a shorter token would be
		// issued already expired.
		return "", time.Time{}, trail.Errorf(trail.EINVALID, "a viewer token lives from 1 s to %s, not %s", MaxTokenTTL, ttl)
	}
	if tenant == "" || len(tenant) > maxTenantLen || !utf8.ValidString(tenant) {
		return "", time.Time{}, trail.Errorf(trail.EINVALID, "a viewer token is bound to one tenant: 1 to %d bytes of UTF-8", maxTenantLen)
	}
	exp := now.Add(ttl).Truncate(time.Second)
	c := tokenClaims{V: 1, Tenant: tenant, IAT: now.Unix(), Exp: exp.Unix(), JTI: randomString(16, base62)}
	b, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, err
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return tokenPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(tokenMAC(secret, payload)), exp, nil
}

func tokenMAC(secret []byte, payload string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(tokenPrefix))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// ParseToken verifies a viewer token with secret at now and returns its
// principal: scope read, bound to the token's tenant, limited to
// ViewerRate. A token that is
// malformed, forged, expired or issued more than MaxClockSkew in the
// future is trail.ErrUnauthorized.
func ParseToken(secret []byte, token string, now time.Time) (*trail.Principal, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return nil, trail.ErrUnauthorized
	}
	payload, mac, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, trail.ErrUnauthorized
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil || !hmac.Equal(got, tokenMAC(secret, payload)) {
		return nil, trail.ErrUnauthorized
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, trail.ErrUnauthorized
	}
	var c tokenClaims
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if dec.Decode(&c) != nil || c.V != 1 || c.Tenant == "" || c.Exp-c.IAT > int64(MaxTokenTTL/time.Second) {
		return nil, trail.ErrUnauthorized
	}
	if now.Unix() >= c.Exp || c.IAT > now.Add(MaxClockSkew).Unix() {
		// A token from the future came from a clock far off or a leaked
		// secret; honouring it would stretch its life past MaxTokenTTL.
		return nil, trail.ErrUnauthorized
	}
	return &trail.Principal{Scopes: []trail.Scope{trail.ScopeRead}, Tenant: c.Tenant, Viewer: true, TokenID: c.JTI, Rate: ViewerRate}, nil
}
