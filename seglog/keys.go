package seglog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trail-audit/trail"
)

var _ trail.KeyStore = (*Store)(nil)

// keysSchema holds the API keys, in the synced state file, apart from the rebuildable index,
// so that a key is as durable as a record. Triggers allow exactly two
// changes to a stored key: its revocation, once, and its last use, forward.
const keysSchema = `
CREATE TABLE IF NOT EXISTS keys (
	id        TEXT PRIMARY KEY,
	name      TEXT NOT NULL,
	scopes    TEXT NOT NULL,
	tenant    TEXT NOT NULL,
	source    TEXT NOT NULL,
	rate      REAL NOT NULL,
	created   INTEGER NOT NULL,
	expires   INTEGER,
	revoked   INTEGER,
	last_used INTEGER,
	hash      BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS keys_no_delete BEFORE DELETE ON keys
BEGIN SELECT RAISE(ABORT, 'trail: keys are never deleted'); END;
CREATE TRIGGER IF NOT EXISTS keys_fixed BEFORE UPDATE ON keys
WHEN NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.scopes IS NOT OLD.scopes
	OR NEW.tenant IS NOT OLD.tenant OR NEW.source IS NOT OLD.source OR NEW.rate IS NOT OLD.rate
	OR NEW.created IS NOT OLD.created OR NEW.expires IS NOT OLD.expires OR NEW.hash IS NOT OLD.hash
	OR (OLD.revoked IS NOT NULL AND NEW.revoked IS NOT OLD.revoked)
	OR (OLD.last_used IS NOT NULL AND (NEW.last_used IS NULL OR NEW.last_used < OLD.last_used))
BEGIN SELECT RAISE(ABORT, 'trail: a key changes only by its revocation and its last use'); END;
`

const keyCols = "id, name, scopes, tenant, source, rate, created, expires, revoked, last_used, hash"

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNull(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// CreateKey stores k in a synced transaction. See trail.KeyStore.
func (s *Store) CreateKey(ctx context.Context, k *trail.Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if s.state.closed {
		return fmt.Errorf("seglog: create key: %w", errClosed)
	}
	_, err := s.state.w.ExecContext(ctx, "INSERT INTO keys ("+keyCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		k.ID, k.Name, trail.FormatScopes(k.Scopes), k.Tenant, k.Source, k.Rate,
		k.Created.UnixNano(), nullTime(k.Expires), nullTime(k.Revoked), nullTime(k.LastUsed), k.Hash[:])
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return trail.Errorf(trail.ECONFLICT, "key id %q is taken", k.ID)
	} else if err != nil {
		return fmt.Errorf("seglog: create key: %w", err)
	}
	return nil
}

func scanKey(row interface{ Scan(...any) error }) (*trail.Key, error) {
	var k trail.Key
	var scopes string
	var created int64
	var expires, revoked, lastUsed sql.NullInt64
	var hash []byte
	if err := row.Scan(&k.ID, &k.Name, &scopes, &k.Tenant, &k.Source, &k.Rate, &created, &expires, &revoked, &lastUsed, &hash); err != nil {
		return nil, err
	}
	sc, err := trail.ParseScopes(scopes)
	if err != nil {
		return nil, fmt.Errorf("key %s: stored scopes: %w", k.ID, err)
	}
	if len(hash) != len(k.Hash) {
		return nil, fmt.Errorf("key %s: stored hash is %d bytes", k.ID, len(hash))
	}
	k.Scopes = sc
	copy(k.Hash[:], hash)
	k.Created = time.Unix(0, created).UTC()
	k.Expires, k.Revoked, k.LastUsed = fromNull(expires), fromNull(revoked), fromNull(lastUsed)
	return &k, nil
}

// GetKey returns the key with the id. See trail.KeyStore.
func (s *Store) GetKey(ctx context.Context, id string) (*trail.Key, error) {
	k, err := scanKey(s.state.r.QueryRowContext(ctx, "SELECT "+keyCols+" FROM keys WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, trail.ErrKeyNotFound
	} else if err != nil {
		return nil, fmt.Errorf("seglog: get key: %w", err)
	}
	return k, nil
}

// ListKeys returns every key, oldest first. See trail.KeyStore.
func (s *Store) ListKeys(ctx context.Context) ([]*trail.Key, error) {
	rows, err := s.state.r.QueryContext(ctx, "SELECT "+keyCols+" FROM keys ORDER BY created, id")
	if err != nil {
		return nil, fmt.Errorf("seglog: list keys: %w", err)
	}
	defer rows.Close()
	var keys []*trail.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("seglog: list keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("seglog: list keys: %w", err)
	}
	return keys, nil
}

// RevokeKey marks the key revoked, once. See trail.KeyStore.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) (*trail.Key, error) {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if s.state.closed {
		return nil, fmt.Errorf("seglog: revoke key: %w", errClosed)
	}
	if _, err := s.state.w.ExecContext(ctx, "UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL", at.UnixNano(), id); err != nil {
		return nil, fmt.Errorf("seglog: revoke key: %w", err)
	}
	k, err := scanKey(s.state.w.QueryRowContext(ctx, "SELECT "+keyCols+" FROM keys WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, trail.ErrKeyNotFound
	} else if err != nil {
		return nil, fmt.Errorf("seglog: revoke key: %w", err)
	}
	return k, nil
}

// TouchKey moves the key's last use forward to at. See trail.KeyStore.
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if s.state.closed {
		return fmt.Errorf("seglog: touch key: %w", errClosed)
	}
	_, err := s.state.w.ExecContext(ctx, "UPDATE keys SET last_used = ?1 WHERE id = ?2 AND (last_used IS NULL OR last_used < ?1)", at.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("seglog: touch key: %w", err)
	}
	return nil
}

// TokenSecret returns the viewer-token secret, storing candidate if there
// is none. It lives in meta, whose rows never change once written.
func (s *Store) TokenSecret(ctx context.Context, candidate []byte) ([]byte, error) {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if s.state.closed {
		return nil, fmt.Errorf("seglog: token secret: %w", errClosed)
	}
	if _, err := s.state.w.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('token_secret', ?) ON CONFLICT DO NOTHING", string(candidate)); err != nil {
		return nil, fmt.Errorf("seglog: token secret: %w", err)
	}
	var v string
	if err := s.state.w.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'token_secret'").Scan(&v); err != nil {
		return nil, fmt.Errorf("seglog: token secret: %w", err)
	}
	return []byte(v), nil
}
