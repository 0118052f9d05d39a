// Package auth turns credentials into trail.Principals: API keys of the
// form trail_<keyid>_<secret>, checked against a trail.KeyStore through a
// short-lived cache, and viewer tokens, checked by HMAC alone. It also holds
// the rate limits: a token bucket per key and a limit on failed
// authentications per client address.
//
// What a principal may do is decided in the root package
// (trail.Principal); this package only establishes who is calling.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/trail-audit/trail"
)

// KeyPrefix starts every API key.
const KeyPrefix = "trail_"

// SecretLen is the length of a key's secret: 43 base62 characters hold
// 43·log2(62) ≈ 256.03 random bits.
const SecretLen = 43

// keyIDLen is the length of generated key ids: 12 characters of [a-z0-9],
// about 62 bits, enough that ids never collide in practice.
const keyIDLen = 12

const (
	base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	base36 = "0123456789abcdefghijklmnopqrstuvwxyz"
)

// randomString returns n characters drawn uniformly from alphabet, by
// rejection sampling so that no character is more likely than another.
func randomString(n int, alphabet string) string {
	limit := byte(256 - 256%len(alphabet))
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		rand.Read(buf[:]) // never fails (crypto/rand, Go 1.24+)
		for _, b := range buf {
			if b < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}

// NewKeyID returns a fresh random key id.
func NewKeyID() string { return randomString(keyIDLen, base36) }

// NewSecret returns a fresh random secret of SecretLen base62 characters.
func NewSecret() string { return randomString(SecretLen, base62) }

// FormatKey returns the key a client sends: trail_<id>_<secret>.
func FormatKey(id, secret string) string { return KeyPrefix + id + "_" + secret }

// HashSecret returns the hash the store keeps in place of the secret.
func HashSecret(secret string) trail.KeyHash { return sha256.Sum256([]byte(secret)) }

// CheckSecret reports whether secret is k's, in time that does not depend
// on where the two differ.
func CheckSecret(k *trail.Key, secret string) bool {
	h := HashSecret(secret)
	return subtle.ConstantTimeCompare(h[:], k.Hash[:]) == 1
}

// ParseKey splits a key into its id and secret. Any other string is
// trail.ErrUnauthorized, the one answer every bad credential gets.
func ParseKey(key string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok {
		return "", "", trail.ErrUnauthorized
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || trail.ValidateKeyID(id) != nil || len(secret) != SecretLen {
		return "", "", trail.ErrUnauthorized
	}
	for i := 0; i < len(secret); i++ {
		if strings.IndexByte(base62, secret[i]) < 0 {
			return "", "", trail.ErrUnauthorized
		}
	}
	return id, secret, nil
}

// maxCredentialLen bounds what ParseBearer accepts; keys are 62 characters
// and viewer tokens a few hundred.
const maxCredentialLen = 2048

// ParseBearer returns the credential of an Authorization header of the
// Bearer scheme (RFC 6750): the scheme is case-insensitive and the
// credential is token68. Anything else is trail.ErrUnauthorized.
func ParseBearer(header string) (string, error) {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", trail.ErrUnauthorized
	}
	cred = strings.TrimLeft(cred, " ")
	if cred == "" || len(cred) > maxCredentialLen {
		return "", trail.ErrUnauthorized
	}
	for i := 0; i < len(cred); i++ {
		c := cred[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			// token68 allows '=' only as trailing padding.
			if c == '=' && strings.Trim(cred[i:], "=") == "" {
				break
			}
			return "", trail.ErrUnauthorized
		}
	}
	return cred, nil
}
