package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// readStoreFile sets cfg.store from --store-file, so that a MongoDB URI
// with a password stays out of the process's command line, which ps shows
// every local user. Errors never quote the file: it holds the secret.
func (cfg *serveConfig) readStoreFile() error {
	if cfg.storeFile == "" {
		return nil
	}
	if cfg.store != "embedded" {
		return usageError{errors.New("give --store (TRAIL_STORE) or --store-file (TRAIL_STORE_FILE), not both")}
	}
	b, err := os.ReadFile(cfg.storeFile)
	if err != nil {
		return fmt.Errorf("serve: --store-file: %w", err)
	}
	uri := strings.TrimSpace(string(b))
	if !isMongoURI(uri) {
		return usageError{fmt.Errorf("--store-file %s must hold one MongoDB URI, mongodb://user:password@host/db", cfg.storeFile)}
	}
	cfg.store = uri
	return nil
}

// loopback reports whether a listener's address is reachable from this host
// only. A wildcard address (":6060", "0.0.0.0:6060") is not.
func loopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
