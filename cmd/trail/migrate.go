package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
	"github.com/trail-audit/trail/seglog"
	"github.com/trail-audit/trail/sqlite"
	"golang.org/x/mod/sumdb/tlog"
)

const migrateAbout = `Migrate converts a data directory of the SQLite layout of earlier versions
(--data/trail.db) to the log-structured store that trail serve now opens.
It copies every record verbatim, in seq order, with its idempotency digest
and Merkle hashes, and the checkpoints, API keys and viewer-token secret;
it re-hashes every copied record and checks that the new store's root is
the old one's. Only then does it rename trail.db to trail.db.migrated, which
you may delete once "trail verify" passes against the new store. Stop the
server first; an interrupted migration can simply be run again.`

// runMigrate is trail migrate.
func (c *cli) runMigrate(ctx context.Context, args []string) error {
	fs := newFlagSet("migrate", "[flags]", migrateAbout, c.stderr)
	data := fs.String("data", "./data", "the data `directory` to convert")
	log := fs.String("log", "main", "`name` of the log trail.db holds")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkDataDir(*data); err != nil {
		return err
	}
	unlock, err := lockDir(*data)
	if err != nil {
		return err
	}
	defer unlock()
	n, err := migrate(ctx, *data, *log)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(c.stdout, "migrated %d records of log %q; the old store is %s\n", n, *log, filepath.Join(*data, seglog.LegacyFile+".migrated"))
	return nil
}

// migrate copies the SQLite store in dir to a new store beside it, checks
// the copy and renames the old file. What an earlier, interrupted run left
// is removed first: until the rename, the SQLite file is the store.
func migrate(ctx context.Context, dir, log string) (int64, error) {
	path := filepath.Join(dir, seglog.LegacyFile)
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("%w (nothing to migrate in %s)", err, dir)
	}
	for _, name := range []string{"log", "index", "state.db", "state.db-wal", "state.db-shm"} {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return 0, err
		}
	}
	old, err := sqlite.Open(sqlite.Config{Path: path, Log: log})
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer old.Close()
	st, err := seglog.Open(seglog.Config{Dir: dir, Log: log, Migrating: true})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	size, err := copyRecords(ctx, old, st, log)
	if err != nil {
		return 0, err
	}
	if err := copyState(ctx, old, st); err != nil {
		return 0, err
	}
	if err := checkCopy(ctx, old, st, log, size); err != nil {
		return 0, err
	}
	if err := errors.Join(st.Close(), old.Close()); err != nil {
		return 0, err
	}
	if err := os.Rename(path, path+".migrated"); err != nil {
		return 0, err
	}
	for _, ext := range []string{"-wal", "-shm"} {
		if err := os.Rename(path+ext, path+".migrated"+ext); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
	}
	return size, nil
}

// copyRecords appends every record of old to st, in batches, as stored.
func copyRecords(ctx context.Context, old *sqlite.Store, st *seglog.Store, log string) (int64, error) {
	h, err := old.Head(ctx)
	if err != nil {
		return 0, err
	}
	var batch []*trail.Entry
	flush := func() error {
		err := st.Append(ctx, batch)
		batch = batch[:0]
		return err
	}
	err = old.Scan(ctx, log, 0, h.Size, func(e *trail.Entry) error {
		batch = append(batch, e)
		if len(batch) == 1000 {
			return flush()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	if err != nil {
		return 0, fmt.Errorf("copy records: %w", err)
	}
	return h.Size, nil
}

// copyState copies the checkpoints, in the order they were stored, the
// keys and the viewer-token secret.
func copyState(ctx context.Context, old *sqlite.Store, st *seglog.Store) error {
	rows, err := old.DB().QueryContext(ctx, "SELECT log, size, note FROM checkpoints ORDER BY id")
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var log string
		var size int64
		var note []byte
		if err := rows.Scan(&log, &size, &note); err != nil {
			return err
		}
		if err := st.AddCheckpoint(ctx, log, size, note); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	keys, err := old.ListKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := st.CreateKey(ctx, k); err != nil {
			return fmt.Errorf("copy key %s: %w", k.ID, err)
		}
	}
	var secret []byte
	err = old.DB().QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'token_secret'").Scan(&secret)
	if err == nil {
		_, err = st.TokenSecret(ctx, secret)
	} else if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	return err
}

// checkCopy re-hashes every record of the new store from its bytes, checks
// its stored hashes against the rebuilt tree, and compares the root with
// the old store's.
func checkCopy(ctx context.Context, old *sqlite.Store, st *seglog.Store, log string, size int64) error {
	a := merkle.NewAudit(log)
	err := st.Scan(ctx, log, 0, size, func(e *trail.Entry) error {
		if err := a.Add(e.Bytes); err != nil {
			return err
		}
		if got := a.Created(); len(got) != len(e.Hashes) || !equalHashes(got, e.Hashes) {
			return fmt.Errorf("seq %d: the stored hashes are not the ones the tree creates", e.Seq)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	if a.Size() != size || size == 0 {
		if size == 0 {
			return nil
		}
		return fmt.Errorf("check the copy: %d records, want %d", a.Size(), size)
	}
	got, err := a.Root(size)
	if err != nil {
		return err
	}
	want, err := tlog.TreeHash(size, merkle.Reader(ctx, old, log))
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("check the copy: the new store's root is %v, the old one's %v", got, want)
	}
	return nil
}

func equalHashes(a, b []tlog.Hash) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
