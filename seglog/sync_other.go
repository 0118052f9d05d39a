//go:build !linux

package seglog

import "os"

// fdatasync syncs f where fdatasync(2) is not at hand.
func fdatasync(f *os.File) error { return f.Sync() }
