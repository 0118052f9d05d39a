package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/merkle"
)

const verifyAbout = `Check a log against its signed checkpoints, with a verifier key you trust
(pin it out of band: a key fetched from the server under test proves nothing).

Against a server (--url) it checks, in order:
  1. the latest checkpoint's signature;
  2. that it extends the last checkpoint this machine saw (kept in --state),
     with a consistency proof: the log only grew;
  3. a full audit: it re-hashes every record the checkpoint covers, checks
     that seqs are dense and in place, and recomputes the root;
  4. that records stored past the checkpoint get signed within --wait.
With --file it checks an export (trail export) offline: 1 to 3.
It exits 1 and names the first bad seq if any check fails.`

func defaultStatePath() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ".trail-verify.json"
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "trail", "verify.json")
}

// runVerify is the CLI over client.Auditor: flags, the state file, the
// pinned key, and progress on stderr.
func (c *cli) runVerify(ctx context.Context, args []string) error {
	fs := newFlagSet("verify", "[flags]", verifyAbout, c.stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "trail server URL")
	var caFile string
	caFileFlag(fs, &caFile)
	file := fs.String("file", "", "verify this export file (from trail export) instead of a server")
	key := fs.String("key", "", "verifier key, name+hash+base64 (or use --key-file)")
	keyFile := fs.String("key-file", "", "file holding the verifier key")
	log := fs.String("log", "", "log to verify (default: the server's own log)")
	statePath := fs.String("state", defaultStatePath(), "file that remembers the last checkpoint seen of each log")
	quick := fs.Bool("quick", false, "check the signature and consistency only, not every record")
	wait := fs.Duration("wait", 3*time.Second, "how long records past the checkpoint may wait to be signed")
	token := fs.String("token", "", "API `key` with scope audit (prefer TRAIL_TOKEN)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	vkey, err := loadVerifierKey(*key, *keyFile)
	if err != nil {
		return err
	}
	state := &client.AuditState{}
	if *statePath != "" {
		if state, err = client.LoadAuditState(*statePath); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
	}
	a := client.NewAuditor(client.New(*url, append(caFileOption(caFile), client.WithToken(*token))...), vkey, state)
	a.TailWait = *wait
	a.Logf = func(format string, args ...any) { fmt.Fprintf(c.stdout, format+"\n", args...) }
	a.Progress = progressFunc(c.stderr, "audit", "records")
	switch {
	case *file != "":
		err = verifyFile(ctx, a, *file)
	case *quick:
		_, err = a.Check(ctx, *log)
	default:
		_, err = a.Audit(ctx, *log)
	}
	if err != nil {
		if errors.As(err, new(*client.CheckpointError)) {
			err = fmt.Errorf("%w (is --key the key of this log?)", err)
		}
		return fmt.Errorf("verify: FAIL: %w", err)
	}
	if *statePath != "" {
		if err := state.Save(*statePath); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
	}
	fmt.Fprintln(c.stdout, "OK")
	return nil
}

func loadVerifierKey(key, file string) (string, error) {
	if key == "" && file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("verify: %w", err)
		}
		key = strings.TrimSpace(string(b))
		if strings.HasPrefix(key, "PRIVATE+KEY+") { // the server's own key file
			_, vkey, err := merkle.ParseKey(key)
			return vkey, err
		}
	}
	if key == "" {
		return "", usageError{errors.New("verify: no verifier key: pass --key or --key-file with the key you pinned (the server publishes it at GET /checkpoint/key; fetch it once over a channel you trust)")}
	}
	return key, nil
}

// verifyFile audits an export file offline.
func verifyFile(ctx context.Context, a *client.Auditor, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = a.AuditExport(ctx, f)
	var me *client.MismatchError
	if errors.As(err, &me) && me.Seq < 0 {
		return fmt.Errorf("%w; offline, the changed record cannot be named: run trail verify --url against the server to name it", err)
	}
	return err
}
