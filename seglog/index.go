package seglog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/trail-audit/trail"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// The index has two parts. The id index is one row per record, keyed by
// seq: the id's order key (idKey) and 64-bit hash (idHash), and the offset
// of the record's frame, with an index on (idk, idh). It holds the key and
// hash, not the id: reads check the id against the record bytes, which
// keeps the id index exact and small and turns an index that disagrees
// with the log into an error rather than a wrong answer. List's
// index is blocks of records' query columns with a summary each
// (blocks.go), not an entry per record. The dictionary numbers the strings
// of the fields with few values (tenant, action, types, source, outcome);
// row 0 is the empty string, which every absent field refers to.
const indexSchema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dict (
	id INTEGER PRIMARY KEY,
	s  TEXT NOT NULL UNIQUE
) STRICT;
INSERT OR IGNORE INTO dict (id, s) VALUES (0, '');
CREATE TABLE IF NOT EXISTS records (
	seq INTEGER PRIMARY KEY,
	idk INTEGER NOT NULL,
	idh INTEGER NOT NULL,
	off INTEGER NOT NULL
) STRICT;
` + blocksSchema + secondaryIndexes

// secondaryIndexes are the index entries of each row. A full rebuild drops
// them, loads the rows and creates them again, which sorts once instead of
// inserting row by row.
const secondaryIndexes = `
CREATE INDEX IF NOT EXISTS records_id ON records (idk, idh);
`

// dropIndexes drops the secondary indexes, for a bulk load.
func (ix *index) dropIndexes(ctx context.Context) error {
	_, err := ix.wc.ExecContext(ctx, "DROP INDEX IF EXISTS records_id;")
	return err
}

// createIndexes creates the secondary indexes after a bulk load.
func (ix *index) createIndexes(ctx context.Context) error {
	_, err := ix.wc.ExecContext(ctx, secondaryIndexes)
	return err
}

// indexVersion names the schema; an index of another version is rebuilt.
const indexVersion = "4"

// index is the derived index file. Its writer connection belongs to the
// indexer (and to Open's catch-up before it).
type index struct {
	path      string
	w         *sql.DB
	wc        *sql.Conn
	r         *sql.DB
	watermark int64
	dict      map[string]int64
	stmts     map[string]*sql.Stmt
	args      []any

	prepared map[string]*sql.Stmt // the readers' statements, by query

	blocks blockSet
	cur    *blockBuilder // the block being filled: the indexer's
	buf    []byte
}

// openIndex opens the index in dir. An index that cannot be opened, is of
// another log or version, or claims more records than the log holds is
// removed and begun anew: it is derived, and Open rebuilds it.
func openIndex(dir, log string, size int64) (*index, error) {
	ix, err := tryOpenIndex(dir, log, size)
	if err == nil {
		return ix, nil
	}
	if rerr := os.RemoveAll(dir); rerr != nil {
		return nil, fmt.Errorf("%w; and removing it to rebuild: %v", err, rerr)
	}
	return tryOpenIndex(dir, log, size)
}

func tryOpenIndex(dir, log string, size int64) (*index, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "index.db")
	// SQLite would create the file, and its -wal, 0644: records are not
	// for every local user to read.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	ix := &index{path: path, dict: make(map[string]int64), stmts: make(map[string]*sql.Stmt)}
	if ix.w, err = sql.Open("sqlite", indexDSN(path, false)); err != nil {
		return nil, err
	}
	ix.w.SetMaxOpenConns(1)
	ctx := context.Background()
	if ix.wc, err = ix.w.Conn(ctx); err != nil {
		ix.close()
		return nil, err
	}
	if err := ix.init(ctx, log, size); err != nil {
		ix.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if ix.r, err = sql.Open("sqlite", indexDSN(path, true)); err != nil {
		ix.close()
		return nil, err
	}
	ix.r.SetMaxOpenConns(8)
	ix.r.SetMaxIdleConns(8)
	ix.prepared = make(map[string]*sql.Stmt)
	for _, q := range []string{byIDKey, offsetOf, dictID, dictPrefix} {
		if ix.prepared[q], err = ix.r.Prepare(q); err != nil {
			ix.close()
			return nil, err
		}
	}
	return ix, nil
}

// indexDSN returns the driver's data source name. The index is unsynced:
// it is rebuilt from the log whenever it is lost.
func indexDSN(path string, read bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "temp_store(MEMORY)")
	if read {
		q.Add("_pragma", "query_only(ON)")
		q.Add("_pragma", "cache_size(-8192)")
	} else {
		q.Add("_pragma", "synchronous(OFF)")
		q.Add("_pragma", "cache_size(-65536)")
		q.Add("_pragma", "wal_autocheckpoint(8192)")
	}
	return path + "?" + q.Encode()
}

func (ix *index) init(ctx context.Context, log string, size int64) error {
	if _, err := ix.wc.ExecContext(ctx, "PRAGMA page_size = 8192"); err != nil {
		return err
	}
	var mode string
	if err := ix.wc.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return err
	}
	if _, err := ix.wc.ExecContext(ctx, indexSchema); err != nil {
		return err
	}
	if _, err := ix.wc.ExecContext(ctx, "INSERT OR IGNORE INTO meta (key, value) VALUES ('log', ?), ('version', ?), ('watermark', '0')", log, indexVersion); err != nil {
		return err
	}
	m := map[string]string{}
	rows, err := ix.wc.QueryContext(ctx, "SELECT key, value FROM meta")
	if err != nil {
		return err
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return err
		}
		m[k] = v
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if m["log"] != log || m["version"] != indexVersion {
		return fmt.Errorf("the index is of log %q, version %s; want log %q, version %s", m["log"], m["version"], log, indexVersion)
	}
	if ix.watermark, err = strconv.ParseInt(m["watermark"], 10, 64); err != nil || ix.watermark > size || ix.watermark < 0 {
		return fmt.Errorf("the index claims %s records; the log holds %d", m["watermark"], size)
	}
	return ix.loadBlocks(ctx)
}

func (ix *index) close() error {
	var errs []error
	for _, st := range ix.stmts {
		errs = append(errs, st.Close())
	}
	for _, st := range ix.prepared {
		errs = append(errs, st.Close())
	}
	if ix.r != nil {
		errs = append(errs, ix.r.Close())
	}
	if ix.wc != nil {
		errs = append(errs, ix.wc.Close())
	}
	if ix.w != nil {
		errs = append(errs, ix.w.Close())
	}
	return errors.Join(errs...)
}

// idHash is the 64-bit hash of an id that the id index and the id filter
// hold.
func idHash(id string) int64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return int64(h.Sum64())
}

// idKey is the id index's order key of an id. A UUID is keyed by its first
// 8 bytes: trail and its SDK make version 7 UUIDs, whose first 48 bits
// are the time in milliseconds, so that new keys come in nearly ascending
// order and the index's B-tree takes appends at its right edge. With a
// random key, each insert dirtied a leaf page of its own, and the index's
// write cost grew with its size (the fill rate halved from 1M to 3M
// records). Any other id is keyed by its hash. The index is ordered by
// (idk, idh), so that ids sharing a key, which anyone can make, are still
// told apart by their hash.
func idKey(id string) int64 {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return idHash(id)
	}
	var v uint64
	for _, part := range [...]string{id[0:8], id[9:13], id[14:18]} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			switch {
			case '0' <= c && c <= '9':
				c -= '0'
			case 'a' <= c && c <= 'f':
				c -= 'a' - 10
			case 'A' <= c && c <= 'F':
				c -= 'A' - 10
			default:
				return idHash(id)
			}
			v = v<<4 | uint64(c)
		}
	}
	return int64(v)
}

// checkWatermark, inside the write transaction, checks that the stored
// watermark is the one this store last wrote. Only one store may index a
// directory (trail serve locks --data); a second one, opened past that
// lock, would index the same seqs, and this names that instead of a
// constraint failure on records.seq.
func (ix *index) checkWatermark(ctx context.Context) error {
	st, err := ix.stmt(ctx, "SELECT value FROM meta WHERE key = 'watermark'")
	if err != nil {
		return err
	}
	var v string
	if err := st.QueryRowContext(ctx).Scan(&v); err != nil {
		return err
	}
	if v != strconv.FormatInt(ix.watermark, 10) {
		return fmt.Errorf("the index holds %s records, but this store indexed %d: another process opened this directory and indexed the log (only one trail may open --data at a time)", v, ix.watermark)
	}
	return nil
}

// rowsPerInsert is how many rows one INSERT statement writes.
const rowsPerInsert = 64

// insert indexes entries, which follow the watermark, and moves the
// watermark past them, in one unsynced transaction: the id index rows, the
// blocks they fill, and the watermark. The blocks are published to List
// once committed.
func (ix *index) insert(ctx context.Context, entries []*trail.Entry, offs []int64) (err error) {
	if _, err := ix.wc.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	cur, curLen := ix.cur, len(ix.cur.rows)
	defer func() {
		if err != nil {
			ix.wc.ExecContext(ctx, "ROLLBACK")
			clear(ix.dict) // it may hold ids of the rolled-back rows
			cur.truncate(curLen)
			ix.cur = cur
		}
	}()
	if err := ix.checkWatermark(ctx); err != nil {
		return err
	}
	for off := 0; off < len(entries); {
		n := min(rowsPerInsert, len(entries)-off)
		withSeq := entries[off].Seq == 0 // an empty table's next rowid is 1, not 0
		if withSeq {
			n = 1
		}
		if err := ix.insertRows(ctx, entries[off:off+n], offs[off:off+n], withSeq); err != nil {
			return err
		}
		off += n
	}
	var metas []*blockMeta
	for i, e := range entries {
		r, err := ix.row(ctx, e, offs[i])
		if err != nil {
			return err
		}
		ix.cur.add(r)
		if ix.cur.full() {
			m, err := ix.putBlock(ctx, ix.cur)
			if err != nil {
				return err
			}
			metas, ix.cur = append(metas, m), newBlockBuilder(ix.cur.first+blockSize)
		}
	}
	if len(ix.cur.rows) > 0 {
		metas = append(metas, ix.cur.partial())
	}
	mark := entries[len(entries)-1].Seq + 1
	if _, err := ix.wc.ExecContext(ctx, "UPDATE meta SET value = ? WHERE key = 'watermark'", strconv.FormatInt(mark, 10)); err != nil {
		return err
	}
	if _, err := ix.wc.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	ix.watermark = mark
	ix.blocks.publish(metas)
	return nil
}

// row returns the block columns of e, whose frame is at off.
func (ix *index) row(ctx context.Context, e *trail.Entry, off int64) (blockRow, error) {
	r := blockRow{time: e.Time.UnixNano(), off: off}
	for j, v := range fieldValues(e) {
		if hashed[j] {
			r.f[j] = strHash(v)
			continue
		}
		d, err := ix.dictID(ctx, v)
		if err != nil {
			return r, err
		}
		r.f[j] = uint64(d)
	}
	return r, nil
}

// insertRows inserts the rows of entries in one statement. Rows after seq
// 0 are inserted without their seq: SQLite gives each the largest rowid
// plus one, which is the seq, since the index holds seqs [0, watermark)
// and only the indexer writes. Leaving the rowid to SQLite and INSERT OR
// ROLLBACK let SQLite skip the statement journal of a multi-row INSERT (a
// tenth of the indexer's CPU); the last rowid is checked against the seq.
func (ix *index) insertRows(ctx context.Context, entries []*trail.Entry, offs []int64, withSeq bool) error {
	row, cols := "(?,?,?)", "idk, idh, off"
	if withSeq {
		row, cols = "(?,?,?,?)", "seq, "+cols
	}
	st, err := ix.stmt(ctx, "INSERT OR ROLLBACK INTO records ("+cols+") VALUES "+strings.Repeat(row+", ", len(entries)-1)+row)
	if err != nil {
		return err
	}
	args := ix.args[:0]
	for i, e := range entries {
		if withSeq {
			args = append(args, e.Seq)
		}
		args = append(args, idKey(e.ID), idHash(e.ID), offs[i])
	}
	ix.args = args
	res, err := st.ExecContext(ctx, args...)
	clear(args)
	if err != nil {
		return err
	}
	last, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if want := entries[len(entries)-1].Seq; last != want {
		return fmt.Errorf("indexed seq %d as row %d: the index does not end where its watermark says", want, last)
	}
	return nil
}

// maxDict bounds the dictionary cache.
const maxDict = 1 << 18

// dictID returns the dictionary id of v, adding v if need be.
func (ix *index) dictID(ctx context.Context, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	if d, ok := ix.dict[v]; ok {
		return d, nil
	}
	sel, err := ix.stmt(ctx, dictID)
	if err != nil {
		return 0, err
	}
	var d int64
	err = sel.QueryRowContext(ctx, v).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		ins, err := ix.stmt(ctx, "INSERT INTO dict (s) VALUES (?)")
		if err != nil {
			return 0, err
		}
		res, err := ins.ExecContext(ctx, v)
		if err != nil {
			return 0, err
		}
		if d, err = res.LastInsertId(); err != nil {
			return 0, err
		}
	} else if err != nil {
		return 0, err
	}
	if len(ix.dict) >= maxDict {
		clear(ix.dict)
	}
	ix.dict[v] = d
	return d, nil
}

// stmt returns the writer's prepared statement of query.
func (ix *index) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := ix.stmts[query]; st != nil {
		return st, nil
	}
	st, err := ix.wc.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare %.40q: %w", query, err)
	}
	ix.stmts[query] = st
	return st, nil
}

// The readers' frequent queries, prepared once.
const (
	byIDKey    = "SELECT seq, off, idh FROM records WHERE idk = ? AND idh = ?"
	offsetOf   = "SELECT off FROM records WHERE seq = ?"
	dictID     = "SELECT id FROM dict WHERE s = ?"
	dictPrefix = "SELECT id FROM dict WHERE s >= ? AND s < ? LIMIT ?"
)

// offsets returns the frame offsets of the records [from, to), from the
// id index, which must hold every one of them.
func (ix *index) offsets(from, to int64) ([]int64, error) {
	rows, err := ix.wc.QueryContext(context.Background(), "SELECT seq, off FROM records WHERE seq >= ? AND seq < ? ORDER BY seq", from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	offs := make([]int64, 0, to-from)
	for rows.Next() {
		var seq, off int64
		if err := rows.Scan(&seq, &off); err != nil {
			return nil, err
		}
		if seq != from+int64(len(offs)) {
			return nil, fmt.Errorf("the index lacks the record of seq %d", from+int64(len(offs)))
		}
		offs = append(offs, off)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if int64(len(offs)) != to-from {
		return nil, fmt.Errorf("the index holds %d of the records [%d, %d)", len(offs), from, to)
	}
	return offs, nil
}

// offset returns the offset of seq's frame in its segment.
func (ix *index) offset(seq int64) (int64, error) {
	var off int64
	err := ix.prepared[offsetOf].QueryRow(seq).Scan(&off)
	return off, err
}
