package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	trail "github.com/trail-audit/trail"
	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collections of access control. A key is found by its _id, so neither
// needs an index of its own:
//
//	keys    {_id: key id, name, scopes, tenant, source, rate, created, expires, revoked, last_used, hash}
//	secrets {_id: "token_secret", value}
//
// A key document is updated only to set revoked (once) and to move
// last_used forward; the filters of those updates enforce both.
const (
	collKeys    = "keys"
	collSecrets = "secrets"
)

var _ trail.KeyStore = (*Store)(nil)

// keyDoc is a key as stored. Times are unix nanoseconds (0: unset), as
// BSON dates would lose precision.
type keyDoc struct {
	ID       string  `bson:"_id"`
	Name     string  `bson:"name"`
	Scopes   string  `bson:"scopes"`
	Tenant   string  `bson:"tenant"`
	Source   string  `bson:"source"`
	Rate     float64 `bson:"rate"`
	Created  int64   `bson:"created"`
	Expires  int64   `bson:"expires"`
	Revoked  int64   `bson:"revoked"`
	LastUsed int64   `bson:"last_used"`
	Hash     []byte  `bson:"hash"`
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (d *keyDoc) key() (*trail.Key, error) {
	sc, err := trail.ParseScopes(d.Scopes)
	if err != nil {
		return nil, fmt.Errorf("key %s: stored scopes: %w", d.ID, err)
	}
	k := &trail.Key{
		ID: d.ID, Name: d.Name, Scopes: sc, Tenant: d.Tenant, Source: d.Source, Rate: d.Rate,
		Created: fromNanos(d.Created), Expires: fromNanos(d.Expires), Revoked: fromNanos(d.Revoked), LastUsed: fromNanos(d.LastUsed),
	}
	if len(d.Hash) != len(k.Hash) {
		return nil, fmt.Errorf("key %s: stored hash is %d bytes", d.ID, len(d.Hash))
	}
	copy(k.Hash[:], d.Hash)
	return k, nil
}

// CreateKey stores k with the store's majority, journaled write concern.
// See trail.KeyStore.
func (s *Store) CreateKey(ctx context.Context, k *trail.Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	d := keyDoc{
		ID: k.ID, Name: k.Name, Scopes: trail.FormatScopes(k.Scopes), Tenant: k.Tenant, Source: k.Source, Rate: k.Rate,
		Created: nanos(k.Created), Expires: nanos(k.Expires), Revoked: nanos(k.Revoked), LastUsed: nanos(k.LastUsed), Hash: k.Hash[:],
	}
	_, err := s.db.Collection(collKeys).InsertOne(ctx, d)
	if driver.IsDuplicateKeyError(err) {
		return trail.Errorf(trail.ECONFLICT, "key id %q is taken", k.ID)
	} else if err != nil {
		return s.wrap("mongo: create key", err)
	}
	return nil
}

// GetKey returns the key with the id. See trail.KeyStore.
func (s *Store) GetKey(ctx context.Context, id string) (*trail.Key, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var d keyDoc
	err := s.db.Collection(collKeys).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, driver.ErrNoDocuments) {
		return nil, trail.ErrKeyNotFound
	} else if err != nil {
		return nil, s.wrap("mongo: get key", err)
	}
	return d.key()
}

// ListKeys returns every key, oldest first. See trail.KeyStore.
func (s *Store) ListKeys(ctx context.Context) ([]*trail.Key, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.db.Collection(collKeys).Find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "created", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, s.wrap("mongo: list keys", err)
	}
	var docs []keyDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, s.wrap("mongo: list keys", err)
	}
	keys := make([]*trail.Key, 0, len(docs))
	for i := range docs {
		k, err := docs[i].key()
		if err != nil {
			return nil, fmt.Errorf("mongo: list keys: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// RevokeKey marks the key revoked, once. See trail.KeyStore.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) (*trail.Key, error) {
	octx, cancel := s.opContext(ctx)
	defer cancel()
	keys := s.db.Collection(collKeys)
	_, err := keys.UpdateOne(octx,
		bson.D{{Key: "_id", Value: id}, {Key: "revoked", Value: int64(0)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "revoked", Value: at.UnixNano()}}}})
	if err != nil {
		return nil, s.wrap("mongo: revoke key", err)
	}
	return s.GetKey(ctx, id)
}

// TouchKey moves the key's last use forward to at. See trail.KeyStore.
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	keys := s.db.Collection(collKeys)
	_, err := keys.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "last_used", Value: bson.D{{Key: "$lt", Value: at.UnixNano()}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_used", Value: at.UnixNano()}}}})
	if err != nil {
		return s.wrap("mongo: touch key", err)
	}
	return nil
}

// TokenSecret returns the viewer-token secret, storing candidate if there
// is none; of replicas racing to store one, the first insert wins.
func (s *Store) TokenSecret(ctx context.Context, candidate []byte) ([]byte, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	coll := s.db.Collection(collSecrets)
	_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "token_secret"}, {Key: "value", Value: candidate}})
	if err != nil && !driver.IsDuplicateKeyError(err) {
		return nil, s.wrap("mongo: token secret", err)
	}
	var d struct {
		Value []byte `bson:"value"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "token_secret"}}).Decode(&d); err != nil {
		return nil, s.wrap("mongo: token secret", err)
	}
	return d.Value, nil
}
