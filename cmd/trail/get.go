package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"

	"github.com/trail-audit/trail"
)

const getAbout = `Get prints the stored bytes of each record, verbatim, one per line. It checks
that they hash to the leaf hash the server sends as their ETag.
`

func (c *cli) runGet(ctx context.Context, args []string) error {
	var cf clientFlags
	fs := newFlagSet("get", "[flags] ID ...", getAbout, c.stderr)
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{errors.New("get: give one or more record ids")}
	}
	cl := cf.client()
	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	missing := 0
	for _, id := range fs.Args() {
		rctx, cancel := context.WithTimeout(ctx, cf.timeout)
		b, _, err := cl.Get(rctx, id)
		cancel()
		if errors.Is(err, trail.ErrNotFound) {
			fmt.Fprintf(c.stderr, "trail: get: no record has id %q\n", id)
			missing++
			continue
		} else if err != nil {
			return fmt.Errorf("get %s: %w", id, err)
		}
		out.Write(b)
		out.WriteByte('\n')
	}
	if missing > 0 {
		return fmt.Errorf("get: %d of %d records not found", missing, fs.NArg())
	}
	return nil
}
