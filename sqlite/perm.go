package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// createPrivate makes the database file, its -wal and its -shm readable by
// the owner only. SQLite creates a new database 0644 (less the umask) and
// gives -wal and -shm the database file's mode, so creating the file 0600
// first is enough for new files; files an older version left 0644 are
// narrowed. Audit records are not for every local user to read.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return fmt.Errorf("make %s private: %w", p, err)
			}
		}
	}
	return nil
}
