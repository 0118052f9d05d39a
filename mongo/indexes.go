package mongo

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// An index is one index the store needs.
type index struct {
	coll string
	name string
	keys bson.D
}

// indexes are the indexes the store creates. Records are found by _id
// "<log>/<seq>" (unique: the fencing token), by log and seq (Scan), and by
// the List filters in (t, log, seq) order. Ids are unique by their _id.
var indexes = []index{
	{collRecords, "log_seq", bson.D{{Key: "log", Value: 1}, {Key: "seq", Value: 1}}},
	{collRecords, "t_log_seq", bson.D{{Key: "t", Value: 1}, {Key: "log", Value: 1}, {Key: "seq", Value: 1}}},
	{collRecords, "tenant_t", bson.D{{Key: "tenant", Value: 1}, {Key: "t", Value: 1}, {Key: "log", Value: 1}, {Key: "seq", Value: 1}}},
	{collRecords, "actor_t", bson.D{{Key: "actor", Value: 1}, {Key: "t", Value: 1}, {Key: "log", Value: 1}, {Key: "seq", Value: 1}}},
	{collRecords, "action_t", bson.D{{Key: "action", Value: 1}, {Key: "t", Value: 1}, {Key: "log", Value: 1}, {Key: "seq", Value: 1}}},
	{collCheckpoints, "log_size", bson.D{{Key: "log", Value: 1}, {Key: "size", Value: -1}}},
}

// createIndexes creates the indexes that do not exist yet, by name.
// Creating only the missing ones keeps start-up cheap and avoids a FerretDB
// v1 crash on re-creating existing compound indexes. Replicas starting
// together may race to create one, hence the retries.
func (s *Store) createIndexes(ctx context.Context) error {
	var err error
	for try := 0; try < 3; try++ {
		if err = s.createMissingIndexes(ctx); err == nil {
			return nil
		}
	}
	return s.wrap("create indexes", err)
}

func (s *Store) createMissingIndexes(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	have := map[string]bool{}
	for _, coll := range []string{collRecords, collCheckpoints} {
		cur, err := s.db.Collection(coll).Indexes().List(ctx)
		if err != nil {
			return err
		}
		var specs []struct {
			Name string `bson:"name"`
		}
		if err := cur.All(ctx, &specs); err != nil {
			return err
		}
		for _, spec := range specs {
			have[coll+"."+spec.Name] = true
		}
	}
	for _, ix := range indexes {
		if have[ix.coll+"."+ix.name] {
			continue
		}
		_, err := s.db.Collection(ix.coll).Indexes().CreateOne(ctx,
			driver.IndexModel{Keys: ix.keys, Options: options.Index().SetName(ix.name)})
		if err != nil {
			return err
		}
	}
	return nil
}
