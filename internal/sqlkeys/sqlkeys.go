// Package sqlkeys keeps trail's API keys and viewer-token secret in an
// SQLite database: the schema and the statements that both embedded stores
// (sqlite/ and seglog/) run, each over its own synced connection and under
// its own lock. It holds no state of its own.
package sqlkeys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trail-audit/trail"
)

// Schema holds the API keys. The store that runs it must sync it like the
// records (synchronous=FULL), so that a key is as durable as a record, and
// open its connections with recursive_triggers(ON). Triggers allow exactly
// two changes to a stored key: its revocation, once, and its last use,
// forward. The token secret is the row 'token_secret' of the store's
// append-only meta table (key TEXT PRIMARY KEY, value TEXT).
const Schema = `
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

// DB is what the functions need of a *sql.DB or *sql.Conn.
type DB interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Create stores k. It returns an ECONFLICT *trail.Error if the id is taken.
// Errors name the store (pkg) and the operation.
func Create(ctx context.Context, pkg string, db DB, k *trail.Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	_, err := db.ExecContext(ctx, "INSERT INTO keys ("+keyCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		k.ID, k.Name, trail.FormatScopes(k.Scopes), k.Tenant, k.Source, k.Rate,
		k.Created.UnixNano(), nullTime(k.Expires), nullTime(k.Revoked), nullTime(k.LastUsed), k.Hash[:])
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return trail.Errorf(trail.ECONFLICT, "key id %q is taken", k.ID)
	} else if err != nil {
		return fmt.Errorf("%s: create key: %w", pkg, err)
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

// Get returns the key with the id, or trail.ErrKeyNotFound.
func Get(ctx context.Context, pkg string, db DB, id string) (*trail.Key, error) {
	k, err := scanKey(db.QueryRowContext(ctx, "SELECT "+keyCols+" FROM keys WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, trail.ErrKeyNotFound
	} else if err != nil {
		return nil, fmt.Errorf("%s: get key: %w", pkg, err)
	}
	return k, nil
}

// List returns every key, oldest first.
func List(ctx context.Context, pkg string, db DB) ([]*trail.Key, error) {
	rows, err := db.QueryContext(ctx, "SELECT "+keyCols+" FROM keys ORDER BY created, id")
	if err != nil {
		return nil, fmt.Errorf("%s: list keys: %w", pkg, err)
	}
	defer rows.Close()
	var keys []*trail.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: list keys: %w", pkg, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: list keys: %w", pkg, err)
	}
	return keys, nil
}

// Revoke marks the key revoked at `at`, once, and returns it as stored, or
// trail.ErrKeyNotFound.
func Revoke(ctx context.Context, pkg string, db DB, id string, at time.Time) (*trail.Key, error) {
	if _, err := db.ExecContext(ctx, "UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL", at.UnixNano(), id); err != nil {
		return nil, fmt.Errorf("%s: revoke key: %w", pkg, err)
	}
	k, err := scanKey(db.QueryRowContext(ctx, "SELECT "+keyCols+" FROM keys WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, trail.ErrKeyNotFound
	} else if err != nil {
		return nil, fmt.Errorf("%s: revoke key: %w", pkg, err)
	}
	return k, nil
}

// Touch moves the key's last use forward to at.
func Touch(ctx context.Context, pkg string, db DB, id string, at time.Time) error {
	_, err := db.ExecContext(ctx, "UPDATE keys SET last_used = ?1 WHERE id = ?2 AND (last_used IS NULL OR last_used < ?1)", at.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("%s: touch key: %w", pkg, err)
	}
	return nil
}

// TokenSecret returns the viewer-token secret, storing candidate if there
// is none. It lives in meta, whose rows never change once written.
func TokenSecret(ctx context.Context, pkg string, db DB, candidate []byte) ([]byte, error) {
	if _, err := db.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('token_secret', ?) ON CONFLICT DO NOTHING", string(candidate)); err != nil {
		return nil, fmt.Errorf("%s: token secret: %w", pkg, err)
	}
	var v string
	if err := db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'token_secret'").Scan(&v); err != nil {
		return nil, fmt.Errorf("%s: token secret: %w", pkg, err)
	}
	return []byte(v), nil
}

// StateSchema holds the state both embedded stores keep beside their
// records and must sync: the meta table (the log's name) and the signed
// checkpoints. Triggers keep both append-only.
const StateSchema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
	id      INTEGER PRIMARY KEY,
	log     TEXT NOT NULL,
	size    INTEGER NOT NULL,
	note    BLOB NOT NULL,
	created INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS checkpoints_size ON checkpoints (log, size);
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'trail: checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'trail: checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS meta_no_update BEFORE UPDATE ON meta
BEGIN SELECT RAISE(ABORT, 'trail: meta is append-only'); END;
CREATE TRIGGER IF NOT EXISTS meta_no_delete BEFORE DELETE ON meta
BEGIN SELECT RAISE(ABORT, 'trail: meta is append-only'); END;
`
