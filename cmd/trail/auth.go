package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
)

// Values of --auth.
const (
	authAuto = "auto"
	authOn   = "on"
	authOff  = "off"
)

func validAuthMode(m string) error {
	switch m {
	case authAuto, authOn, authOff:
		return nil
	}
	return usageError{fmt.Errorf("--auth must be auto, on or off, not %q", m)}
}

// bootstrapHint is the exact command that creates the first admin key for
// this server's store.
func bootstrapHint(cfg *serveConfig) string {
	where := "--data " + cfg.data
	switch {
	case cfg.storeFile != "":
		where = "--store-file " + cfg.storeFile
	case isMongoURI(cfg.store) && strings.Contains(cfg.store, "@"):
		where = "--store-file FILE" // never echo a password; FILE holds the URI
	case isMongoURI(cfg.store):
		where = "--store '" + cfg.store + "'"
	}
	return "trail keys create " + where + " --name admin --scopes admin"
}

// authConfig decides the authentication mode (--auth, DESIGN.md §8) and
// returns node.Config.Auth: nil for open. With auto, the server is open
// only on a loopback address while no key exists; a non-loopback address
// with no keys refuses to start.
func authConfig(ctx context.Context, cfg *serveConfig, addr net.Addr, store trail.Store, logger *slog.Logger) (*auth.Config, error) {
	if cfg.auth == authOff {
		logger.Warn("trail: authentication is off (--auth off): anyone who can reach " + addr.String() + " can read, write and manage keys")
		return nil, nil
	}
	ks, ok := store.(trail.KeyStore)
	if !ok {
		return nil, fmt.Errorf("serve: the store cannot keep API keys")
	}
	keys, err := ks.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("serve: read API keys: %w", err)
	}
	ac := &auth.Config{}
	switch {
	case len(keys) > 0:
		logger.Info("trail: authentication is on", "keys", len(keys))
	case cfg.auth == authOn:
		logger.Warn("trail: authentication is on and no API key exists yet: every request but the public ones gets 401; create one with: " + bootstrapHint(cfg))
	case !loopback(addr):
		return nil, fmt.Errorf("serve: %s is not a loopback address and no API key exists, so trail would be open to the network.\n"+
			"Create the first admin key (with the server stopped):\n\n  %s\n\nthen start trail again, or pass --auth off (TRAIL_AUTH=off) to run open on purpose", addr, bootstrapHint(cfg))
	default:
		ac.OpenWhileNoKeys = true
		logger.Warn("trail: open: no API key exists and " + addr.String() + " is loopback, so every request for a loopback host (localhost, 127.0.0.1) is allowed until the first key is created (POST /keys, or: " + bootstrapHint(cfg) + ")")
	}
	return ac, nil
}
