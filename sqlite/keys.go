package sqlite

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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sqlite: create key: %w", errClosed)
	}
	return sqlkeys.Create(ctx, "sqlite", s.wc, k)
}

// GetKey returns the key with the id. See trail.KeyStore.
func (s *Store) GetKey(ctx context.Context, id string) (*trail.Key, error) {
	return sqlkeys.Get(ctx, "sqlite", s.rdb, id)
}

// ListKeys returns every key, oldest first. See trail.KeyStore.
func (s *Store) ListKeys(ctx context.Context) ([]*trail.Key, error) {
	return sqlkeys.List(ctx, "sqlite", s.rdb)
}

// RevokeKey marks the key revoked, once. See trail.KeyStore.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) (*trail.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("sqlite: revoke key: %w", errClosed)
	}
	return sqlkeys.Revoke(ctx, "sqlite", s.wc, id, at)
}

// TouchKey moves the key's last use forward to at. See trail.KeyStore.
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sqlite: touch key: %w", errClosed)
	}
	return sqlkeys.Touch(ctx, "sqlite", s.wc, id, at)
}

// TokenSecret returns the viewer-token secret, storing candidate if there
// is none. See trail.KeyStore.
func (s *Store) TokenSecret(ctx context.Context, candidate []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("sqlite: token secret: %w", errClosed)
	}
	return sqlkeys.TokenSecret(ctx, "sqlite", s.wc, candidate)
}
