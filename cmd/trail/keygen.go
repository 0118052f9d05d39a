package main

import (
	"context"
	"fmt"
	"os"

	"github.com/trail-audit/trail/merkle"
)

const keygenAbout = `Keygen creates the checkpoint signing key (Ed25519, mode 0600) that
trail serve would otherwise create on its first start, and prints its
verifier key. Use it to create one key for several replicas before they
start, and to record the verifier key that auditors pin. An existing key is
kept: keygen then only prints its verifier key.`

func (c *cli) runKeygen(ctx context.Context, args []string) error {
	fs := newFlagSet("keygen", "[flags]", keygenAbout, c.stderr)
	keyFile := fs.String("key-file", "./data/trail.key", "signing key `file` to create")
	origin := fs.String("origin", "trail.local", "key `name`: the --origin the servers will use")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, existed := os.Stat(*keyFile)
	_, vkey, err := merkle.LoadOrCreateKey(*keyFile, *origin)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if existed == nil {
		fmt.Fprintf(c.stderr, "keygen: %s exists; kept it\n", *keyFile)
	}
	fmt.Fprintln(c.stdout, vkey)
	return nil
}
