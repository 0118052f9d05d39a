package seglog

import (
	"context"
	"fmt"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/sqlkeys"
)

var _ trail.KeyStore = (*Store)(nil)

// CreateKey stores k in a synced transaction. See trail.KeyStore.
func (s *Store) CreateKey(ctx context.Context, k *trail.Key) error {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if s.state.closed {
		return fmt.Errorf("seglog: create key: %w", errClosed)
	}
	return sqlkeys.Create(ctx, "seglog", s.state.w, k)
}

// GetKey returns the key with the id. See trail.KeyStore.
func (s *Store) GetKey(ctx context.Context, id string) (*trail.Key, error) {
	return sqlkeys.Get(ctx, "seglog", s.state.r, id)
}

// ListKeys returns every key, oldest first. See trail.KeyStore.
func (s *Store) ListKeys(ctx context.Context) ([]*trail.Key, error) {
	return sqlkeys.List(ctx, "seglog", s.state.r)
}

// RevokeKey marks the key revoked, once. See trail.KeyStore.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) (*trail.Key, error) {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if s.state.closed {
		return nil, fmt.Errorf("seglog: revoke key: %w", errClosed)
	}
	return sqlkeys.Revoke(ctx, "seglog", s.state.w, id, at)
}

// TouchKey moves the key's last use forward to at. See trail.KeyStore.
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if s.state.closed {
		return fmt.Errorf("seglog: touch key: %w", errClosed)
	}
	return sqlkeys.Touch(ctx, "seglog", s.state.w, id, at)
}

// TokenSecret returns the viewer-token secret, storing candidate if there
// is none. See trail.KeyStore.
func (s *Store) TokenSecret(ctx context.Context, candidate []byte) ([]byte, error) {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if s.state.closed {
		return nil, fmt.Errorf("seglog: token secret: %w", errClosed)
	}
	return sqlkeys.TokenSecret(ctx, "seglog", s.state.w, candidate)
}
