package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	trail "github.com/trail-audit/trail"
	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/mod/sumdb/tlog"
)

// chunk bounds the size of one $in list and of one page.
const chunk = 1000

// entry rebuilds a stored entry from its document. The parsed fields come
// from the record bytes, never from the index copies.
func entry(d *recordDoc) (*trail.Entry, error) {
	hashes, err := trail.DecodeHashes(d.H)
	if len(d.D) != len(trail.Digest{}) || err != nil {
		return nil, fmt.Errorf("record %s: bad digest or hashes", d.ID)
	}
	var digest trail.Digest
	copy(digest[:], d.D)
	e, err := trail.ParseEntry([]byte(d.B), digest, hashes)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", d.ID, err)
	}
	return e, nil
}

// Lookup returns the visible entries with the given ids. It follows each
// id's claim to its record, so that on a sharded cluster both reads target
// one shard. A claimed id whose record is not visible (a batch in flight or
// abandoned) is absent.
func (s *Store) Lookup(ctx context.Context, ids []string) (map[string]*trail.Entry, error) {
	out := map[string]*trail.Entry{}
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		if err := s.lookup(ctx, ids[:n], out); err != nil {
			return nil, fmt.Errorf("mongo: lookup: %w", err)
		}
		ids = ids[n:]
	}
	return out, nil
}

func (s *Store) lookup(ctx context.Context, ids []string, out map[string]*trail.Entry) error {
	claims, err := findByIDs[idDoc](ctx, s, s.ids, slices.Compact(slices.Sorted(slices.Values(ids))), nil)
	if err != nil || len(claims) == 0 {
		return err
	}
	byRecord := map[string]idDoc{}
	recIDs := make([]string, len(claims))
	for i, c := range claims {
		recIDs[i] = recordID(c.Log, c.Seq)
		byRecord[recIDs[i]] = c
	}
	recs, err := findByIDs[recordDoc](ctx, s, s.records, recIDs, nil)
	if err != nil {
		return err
	}
	visible, err := s.visibleFunc(ctx, recs)
	if err != nil {
		return err
	}
	for i := range recs {
		r := &recs[i]
		c, ok := byRecord[r.ID]
		if !ok || r.EventID != c.ID || r.Tok != c.Tok || !visible(r) {
			continue
		}
		e, err := entry(r)
		if err != nil {
			return err
		}
		out[c.ID] = e
	}
	return nil
}

// Get returns the visible entry with the id, or trail.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*trail.Entry, error) {
	m, err := s.Lookup(ctx, []string{id})
	e, ok := m[id]
	if err == nil && !ok {
		err = trail.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("mongo: get %q: %w", id, err)
	}
	return e, nil
}

// List returns up to f.Limit visible entries that match f, merged across
// all logs in (time, log, seq) order. Limit <= 0 means no limit.
func (s *Store) List(ctx context.Context, f *trail.Filter) ([]*trail.Entry, error) {
	dir := 1
	if f.Desc {
		dir = -1
	}
	sort := bson.D{{Key: "t", Value: dir}, {Key: "log", Value: dir}, {Key: "seq", Value: dir}}
	var out []*trail.Entry
	var size int64
	after := f.After
	for (f.Limit <= 0 || len(out) < f.Limit) && (f.MaxBytes <= 0 || size < f.MaxBytes) {
		// Ask for a few more than needed: records of a batch in flight
		// match but are not shown.
		want := chunk
		if f.Limit > 0 {
			want = min(f.Limit-len(out)+16, chunk)
		}
		var recs []recordDoc
		err := s.find(ctx, s.records, listFilter(f, after), options.Find().SetSort(sort).SetLimit(int64(want)), &recs)
		if err != nil {
			return nil, fmt.Errorf("mongo: list: %w", err)
		}
		visible, err := s.visibleFunc(ctx, recs)
		if err != nil {
			return nil, fmt.Errorf("mongo: list: %w", err)
		}
		for i := range recs {
			if !visible(&recs[i]) {
				continue
			}
			e, err := entry(&recs[i])
			if err != nil {
				return nil, fmt.Errorf("mongo: list: %w", err)
			}
			out = append(out, e)
			size += int64(len(e.Bytes))
			if f.Limit > 0 && len(out) == f.Limit || f.MaxBytes > 0 && size >= f.MaxBytes {
				break
			}
		}
		if len(recs) < want {
			break
		}
		last := recs[len(recs)-1]
		after = &trail.Cursor{Time: last.T, Log: last.Log, Seq: last.Seq}
	}
	return out, nil
}

// listFilter translates f, resuming strictly after the cursor.
func listFilter(f *trail.Filter, after *trail.Cursor) bson.D {
	var and bson.A
	eq := func(field, v string) {
		if v != "" {
			and = append(and, bson.D{{Key: field, Value: v}})
		}
	}
	eq("tenant", f.Tenant)
	eq("actor", f.Actor)
	eq("actor_type", f.ActorType)
	eq("target", f.Target)
	eq("target_type", f.TargetType)
	eq("source", f.Source)
	eq("outcome", f.Outcome)
	if !f.ActionPrefix {
		eq("action", f.Action)
	} else if f.Action != "" {
		// A range, not a $regex, so that the index serves it. Actions are
		// ASCII, so the prefix with its last byte incremented bounds it.
		p := f.Action
		upper := p[:len(p)-1] + string(rune(p[len(p)-1]+1))
		and = append(and, bson.D{{Key: "action", Value: bson.D{{Key: "$gte", Value: p}, {Key: "$lt", Value: upper}}}})
	}
	if !f.Since.IsZero() {
		and = append(and, bson.D{{Key: "t", Value: bson.D{{Key: "$gte", Value: f.Since.UnixNano()}}}})
	}
	if !f.Until.IsZero() {
		and = append(and, bson.D{{Key: "t", Value: bson.D{{Key: "$lt", Value: f.Until.UnixNano()}}}})
	}
	if c := after; c != nil {
		op := "$gt"
		if f.Desc {
			op = "$lt"
		}
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "t", Value: bson.D{{Key: op, Value: c.Time}}}},
			bson.D{{Key: "t", Value: c.Time}, {Key: "log", Value: bson.D{{Key: op, Value: c.Log}}}},
			bson.D{{Key: "t", Value: c.Time}, {Key: "log", Value: c.Log}, {Key: "seq", Value: bson.D{{Key: op, Value: c.Seq}}}},
		}}})
	}
	if len(and) == 0 {
		return bson.D{}
	}
	return bson.D{{Key: "$and", Value: and}}
}

// visibleFunc returns a test of visibility (seq below its log's committed
// size) for recs, reading the sizes it does not know yet.
func (s *Store) visibleFunc(ctx context.Context, recs []recordDoc) (func(*recordDoc) bool, error) {
	need := map[string]int64{}
	for _, r := range recs {
		need[r.Log] = max(need[r.Log], r.Seq)
	}
	sizes, err := s.sizesFor(ctx, need)
	if err != nil {
		return nil, err
	}
	return func(r *recordDoc) bool { return r.Seq < sizes[r.Log] }, nil
}

// Scan calls fn for the visible entries of log with from <= seq < to, in
// seq order. A record whose bytes do not parse is passed with only ID, Log
// and Seq set (from its document), so that verification can name it.
func (s *Store) Scan(ctx context.Context, log string, from, to int64, fn func(*trail.Entry) error) error {
	sizes, err := s.sizesFor(ctx, map[string]int64{log: to - 1})
	if err != nil {
		return fmt.Errorf("mongo: scan: %w", err)
	}
	to = min(to, sizes[log])
	for lo := max(from, 0); lo < to; lo += chunk {
		hi := min(lo+chunk, to)
		var recs []recordDoc
		err := s.find(ctx, s.records,
			bson.D{{Key: "log", Value: log}, {Key: "seq", Value: bson.D{{Key: "$gte", Value: lo}, {Key: "$lt", Value: hi}}}},
			options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}), &recs)
		if err != nil {
			return fmt.Errorf("mongo: scan: %w", err)
		}
		for i := range recs {
			r := &recs[i]
			e, err := entry(r)
			if err != nil {
				e = &trail.Entry{Bytes: []byte(r.B)}
				e.ID, e.Log, e.Seq = r.EventID, r.Log, r.Seq
				copy(e.Digest[:], r.D)
				e.Hashes, _ = trail.DecodeHashes(r.H) // keep the whole hashes of a damaged record
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReadHashes returns the stored hashes of log at the tlog indexes, from the
// visible records that hold them.
func (s *Store) ReadHashes(ctx context.Context, log string, indexes []int64) ([]tlog.Hash, error) {
	hs, err := trail.ReadHashes(indexes, func(seqs []int64) (map[int64][]tlog.Hash, error) {
		need := int64(-1)
		for _, seq := range seqs {
			need = max(need, seq)
		}
		sizes, err := s.sizesFor(ctx, map[string]int64{log: need})
		if err != nil {
			return nil, err
		}
		var in []string
		for _, seq := range seqs {
			if seq < sizes[log] {
				in = append(in, recordID(log, seq))
			}
		}
		recs, err := findByIDs[recordDoc](ctx, s, s.records, slices.Compact(slices.Sorted(slices.Values(in))),
			bson.D{{Key: "seq", Value: 1}, {Key: "h", Value: 1}})
		if err != nil {
			return nil, err
		}
		m := map[int64][]tlog.Hash{}
		for _, r := range recs {
			// A damaged record's missing hashes are reported by
			// trail.ReadHashes.
			m[r.Seq], _ = trail.DecodeHashes(r.H)
		}
		return m, nil
	})
	if err != nil {
		return nil, fmt.Errorf("mongo: read hashes of %s: %w", log, err)
	}
	return hs, nil
}

// checkpointDoc is a signed checkpoint.
type checkpointDoc struct {
	ID   string `bson:"_id"` // "<log>/<size>"
	Log  string `bson:"log"`
	Size int64  `bson:"size"`
	Note string `bson:"note"`
}

// AddCheckpoint inserts the checkpoint of log at size. Storing the same note
// again is a no-op; a different note for the same size is refused.
func (s *Store) AddCheckpoint(ctx context.Context, log string, size int64, note []byte) error {
	if !utf8.Valid(note) {
		return errors.New("mongo: add checkpoint: note is not UTF-8 text")
	}
	doc := checkpointDoc{ID: recordID(log, size), Log: log, Size: size, Note: string(note)}
	ictx, cancel := s.opContext(ctx)
	_, err := s.cps.InsertOne(ictx, doc)
	cancel()
	if driver.IsDuplicateKeyError(err) {
		old, gerr := s.Checkpoint(ctx, log, size)
		if gerr != nil {
			return fmt.Errorf("mongo: add checkpoint: %w", gerr)
		}
		if string(old) == string(note) {
			return nil
		}
		return trail.Errorf(trail.ECONFLICT, "a different checkpoint of %s at size %d is stored", log, size)
	}
	if err != nil {
		return s.wrap("mongo: add checkpoint", err)
	}
	return nil
}

// Checkpoint returns the checkpoint of log at size, or the latest if size < 0.
func (s *Store) Checkpoint(ctx context.Context, log string, size int64) ([]byte, error) {
	filter := bson.D{{Key: "log", Value: log}}
	if size >= 0 {
		filter = bson.D{{Key: "_id", Value: recordID(log, size)}}
	}
	var docs []checkpointDoc
	err := s.find(ctx, s.cps, filter, options.Find().SetSort(bson.D{{Key: "log", Value: 1}, {Key: "size", Value: -1}}).SetLimit(1), &docs)
	if err == nil && len(docs) == 0 {
		err = trail.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("mongo: checkpoint of %s at size %d: %w", log, size, err)
	}
	return []byte(docs[0].Note), nil
}

// findByIDs returns the documents of c whose _id is in ids, in no order.
// On MongoDB it is one $in query per chunk (targeted by the hashed _id
// shard key). FerretDB v1 uses no index to read: an $in query decodes every
// document of the collection, and even a single _id equality makes SQLite
// scan the table, up to the first match. So there, records (large, and
// usually present) are read one at a time, as are a few ids; more ids
// (usually absent: new events) are read with one $in.
func findByIDs[T any](ctx context.Context, s *Store, c *driver.Collection, ids []string, proj bson.D) ([]T, error) {
	var out []T
	if !s.pointReads || len(ids) > 8 && c != s.records {
		for len(ids) > 0 {
			n := min(len(ids), chunk)
			in := make(bson.A, n)
			for i, id := range ids[:n] {
				in[i] = id
			}
			opts := options.Find()
			if proj != nil {
				opts.SetProjection(proj)
			}
			var docs []T
			if err := s.find(ctx, c, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}}, opts, &docs); err != nil {
				return nil, err
			}
			out = append(out, docs...)
			ids = ids[n:]
		}
		return out, nil
	}
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 4)
	)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fctx, cancel := s.opContext(ctx)
			defer cancel()
			opts := options.FindOne()
			if proj != nil {
				opts.SetProjection(proj)
			}
			var doc T
			err := c.FindOne(fctx, bson.D{{Key: "_id", Value: id}}, opts).Decode(&doc)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, driver.ErrNoDocuments):
			case err != nil:
				if first == nil {
					first = s.wrap("find in "+c.Name(), err)
				}
			default:
				out = append(out, doc)
			}
		}()
	}
	wg.Wait()
	return out, first
}

// find runs one bounded query and decodes all its results into out.
func (s *Store) find(ctx context.Context, c *driver.Collection, filter bson.D, opts *options.FindOptionsBuilder, out any) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if opts == nil {
		opts = options.Find()
	}
	cur, err := c.Find(ctx, filter, opts)
	if err != nil {
		return s.wrap("find in "+c.Name(), err)
	}
	if err := cur.All(ctx, out); err != nil {
		return s.wrap("find in "+c.Name(), err)
	}
	return nil
}
