package auth

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/trail-audit/trail"
)

// Actions of the events that record changes to keys in the log itself.
const (
	ActionKeyCreated = "trail.key.created"
	ActionKeyRevoked = "trail.key.revoked"
)

// A Manager creates and revokes keys and appends each change to the log,
// so that the audit log audits its own access control. It implements
// httpapi.KeyManager; the CLI uses it directly on a store.
type Manager struct {
	Keys trail.KeyStore
	// Ingester appends the key events. It is required: a key change that
	// cannot be logged is not made.
	Ingester trail.Ingester
	// Auth mints viewer tokens; nil refuses to mint.
	Auth *Authenticator
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now().UTC()
	}
	return time.Now().UTC()
}

// keyEventData is the data of a key event: the key's id, bindings and the
// SHA-256 of its secret (DESIGN.md §8 allows the hash, from which the key
// table could be rebuilt), never the secret.
type keyEventData struct {
	KeyID        string        `json:"key_id"`
	Name         string        `json:"name"`
	Scopes       []trail.Scope `json:"scopes"`
	Tenant       string        `json:"tenant,omitempty"`
	Source       string        `json:"source,omitempty"`
	Rate         float64       `json:"rate,omitempty"`
	Created      time.Time     `json:"created"`
	Expires      time.Time     `json:"expires,omitzero"`
	Revoked      time.Time     `json:"revoked,omitzero"`
	SecretSHA256 string        `json:"secret_sha256"`
}

// logKeyEvent appends a key event, written by `by`. Its id is derived from
// the key and the action, so that a retried change is one event.
func (m *Manager) logKeyEvent(ctx context.Context, action string, k *trail.Key, by *trail.Principal) error {
	data, err := json.Marshal(keyEventData{
		KeyID: k.ID, Name: k.Name, Scopes: k.Scopes, Tenant: k.Tenant, Source: k.Source, Rate: k.Rate,
		Created: k.Created, Expires: k.Expires, Revoked: k.Revoked, SecretSHA256: hex.EncodeToString(k.Hash[:]),
	})
	if err != nil {
		return err
	}
	actor := trail.Actor{ID: "operator", Type: "operator"} // the CLI on the store, or an open server
	var keyID string
	if by != nil && by.KeyID != "" {
		actor, keyID = trail.Actor{ID: by.KeyID, Type: "api_key"}, by.KeyID
	}
	e := &trail.Event{
		ID: action + ":" + k.ID, Action: action, Actor: actor, Outcome: trail.OutcomeSuccess,
		Target: &trail.Target{ID: k.ID, Type: "api_key"}, Source: trail.Source{Service: "trail"},
		Data: data, KeyID: keyID,
	}
	if err := e.Validate(); err != nil {
		return err
	}
	if _, err := m.Ingester.Submit(ctx, []*trail.Event{e}); err != nil {
		return fmt.Errorf("auth: log %s of key %s: %w", action, k.ID, err)
	}
	return nil
}

// CreateKey completes spec with a fresh id, secret and creation time,
// logs its creation, stores it, and returns it with the key to hand out.
// The creation is logged first, so that no working key lacks its event.
func (m *Manager) CreateKey(ctx context.Context, spec *trail.Key, by *trail.Principal) (*trail.Key, string, error) {
	k := *spec
	secret := NewSecret()
	k.ID, k.Hash, k.Created = NewKeyID(), HashSecret(secret), m.now()
	k.Revoked, k.LastUsed = time.Time{}, time.Time{}
	if err := k.Validate(); err != nil {
		return nil, "", err
	}
	if err := m.logKeyEvent(ctx, ActionKeyCreated, &k, by); err != nil {
		return nil, "", err
	}
	if err := m.Keys.CreateKey(ctx, &k); err != nil {
		return nil, "", err
	}
	if m.Auth != nil {
		m.Auth.KeyCreated()
	}
	return &k, FormatKey(k.ID, secret), nil
}

// ListKeys returns every key.
func (m *Manager) ListKeys(ctx context.Context) ([]*trail.Key, error) { return m.Keys.ListKeys(ctx) }

// RevokeKey revokes the key and logs it. A key already revoked is
// returned as it is, and logged once.
func (m *Manager) RevokeKey(ctx context.Context, id string, by *trail.Principal) (*trail.Key, error) {
	k, err := m.Keys.RevokeKey(ctx, id, m.now())
	if err != nil {
		return nil, err
	}
	if err := m.logKeyEvent(ctx, ActionKeyRevoked, k, by); err != nil {
		return nil, err
	}
	return k, nil
}

// MintToken mints a viewer token through Auth.
func (m *Manager) MintToken(ctx context.Context, tenant string, ttl time.Duration) (string, time.Time, error) {
	if m.Auth == nil {
		return "", time.Time{}, trail.Errorf(trail.ENOTFOUND, "viewer tokens are not enabled on this server")
	}
	return m.Auth.MintToken(ctx, tenant, ttl)
}
