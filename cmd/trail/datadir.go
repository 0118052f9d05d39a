package main

import (
	"fmt"
	"os"
)

// checkDataDir refuses a data directory that group or others can write:
// whoever can write it can replace the store's files or the signing key
// between two starts. trail creates the directory 0700; an existing one is
// the operator's, so trail refuses rather than change its mode (it may be a
// shared directory such as /tmp).
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("serve: data directory %s is not a directory; choose another with --data (TRAIL_DATA)", dir)
	}
	if m := fi.Mode(); m.Perm()&0o022 != 0 {
		return fmt.Errorf("serve: data directory %s is writable by group or others (mode %04o), so they could replace the store or the signing key: run `chmod go-w %s` (trail creates it 0700), or choose another with --data (TRAIL_DATA)", dir, m.Perm(), dir)
	}
	return nil
}
