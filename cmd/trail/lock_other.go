//go:build !unix

package main

// lockDir does nothing where flock(2) does not exist: do not point two
// servers at one data directory there.
func lockDir(dir string) (unlock func(), err error) {
	return func() {}, nil
}
