package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/merkle"
	"golang.org/x/mod/sumdb/tlog"
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

// verifyState remembers the newest verified checkpoint of each origin.
type verifyState struct {
	Origins map[string]seenCheckpoint `json:"origins"`
}

type seenCheckpoint struct {
	Size int64     `json:"size"`
	Root tlog.Hash `json:"root"`
	Note string    `json:"note"`
	Seen time.Time `json:"seen"`
}

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

// verifier carries one run of trail verify.
type verifier struct {
	out   io.Writer
	key   string
	state *verifyState
	audit *merkle.Audit
	cp    trail.Checkpoint // the checkpoint the audit is checked against
}

func (c *cli) runVerify(ctx context.Context, args []string) error {
	fs := newFlagSet("verify", "[flags]", verifyAbout, c.stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "trail server URL")
	file := fs.String("file", "", "verify this export file (from trail export) instead of a server")
	key := fs.String("key", "", "verifier key, name+hash+base64 (or use --key-file)")
	keyFile := fs.String("key-file", "", "file holding the verifier key")
	log := fs.String("log", "", "log to verify (default: the server's own log)")
	statePath := fs.String("state", defaultStatePath(), "file that remembers the last checkpoint seen of each log")
	quick := fs.Bool("quick", false, "check the signature and consistency only, not every record")
	wait := fs.Duration("wait", 3*time.Second, "how long records past the checkpoint may wait to be signed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	vkey, err := loadVerifierKey(*key, *keyFile)
	if err != nil {
		return err
	}
	v := &verifier{out: c.stdout, key: vkey, state: &verifyState{Origins: map[string]seenCheckpoint{}}}
	if *statePath != "" {
		if err := v.loadState(*statePath); err != nil {
			return err
		}
	}
	if *file != "" {
		err = v.verifyFile(ctx, *file, c.stderr)
	} else {
		err = v.verifyServer(ctx, client.New(*url), *log, *quick, *wait, c.stderr)
	}
	if err != nil {
		return fmt.Errorf("verify: FAIL: %w", err)
	}
	if *statePath != "" {
		if err := v.saveState(*statePath); err != nil {
			return err
		}
	}
	fmt.Fprintln(v.out, "OK")
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

// openNote verifies a checkpoint note's signature with the pinned key.
func (v *verifier) openNote(note []byte) (trail.Checkpoint, error) {
	cp, err := merkle.Open(note, v.key)
	if err != nil {
		return cp, fmt.Errorf("checkpoint: %w (is --key the key of this log?)", err)
	}
	return cp, nil
}

// accept checks a verified checkpoint against the state: it must extend
// the last one seen of its origin. Then it becomes the one remembered.
func (v *verifier) accept(note []byte, cp trail.Checkpoint, prove func(from, to int64) (tlog.TreeProof, error)) error {
	fmt.Fprintf(v.out, "checkpoint: %s size %d root %v: signature OK\n", cp.Origin, cp.Size, cp.Hash)
	prev, ok := v.state.Origins[cp.Origin]
	switch {
	case !ok:
		fmt.Fprintf(v.out, "consistency: first checkpoint seen of %s\n", cp.Origin)
	case prev.Size > cp.Size:
		return fmt.Errorf("the log shrank: its checkpoint has size %d but size %d was seen on %s: records were removed or the log was replaced", cp.Size, prev.Size, prev.Seen.Format(time.RFC3339))
	case prev.Size == cp.Size:
		if prev.Root != cp.Hash {
			return fmt.Errorf("the log forked: size %d had root %v on %s and now has %v", cp.Size, prev.Root, prev.Seen.Format(time.RFC3339), cp.Hash)
		}
		fmt.Fprintf(v.out, "consistency: same checkpoint as seen before\n")
	default:
		var p tlog.TreeProof
		var err error
		if prove != nil {
			if p, err = prove(prev.Size, cp.Size); err != nil {
				return fmt.Errorf("consistency proof from %d to %d: %w", prev.Size, cp.Size, err)
			}
		} else if p, err = tlog.ProveTree(cp.Size, prev.Size, v.audit); err != nil { // offline: from the records
			return fmt.Errorf("consistency from %d to %d: %w", prev.Size, cp.Size, err)
		}
		if err := tlog.CheckTree(p, cp.Size, cp.Hash, prev.Size, prev.Root); err != nil {
			return fmt.Errorf("the log was rewritten: the checkpoint of size %d does not extend the one of size %d seen on %s (%v)", cp.Size, prev.Size, prev.Seen.Format(time.RFC3339), err)
		}
		fmt.Fprintf(v.out, "consistency: extends the checkpoint of size %d seen before\n", prev.Size)
	}
	v.state.Origins[cp.Origin] = seenCheckpoint{Size: cp.Size, Root: cp.Hash, Note: string(note), Seen: time.Now().UTC()}
	return nil
}

func (v *verifier) verifyServer(ctx context.Context, cl *client.Client, log string, quick bool, wait time.Duration, stderr io.Writer) error {
	prove := func(from, to int64) (tlog.TreeProof, error) {
		p, err := cl.Consistency(ctx, logOf(v.cp.Origin, log), from, to)
		if err != nil {
			return nil, err
		}
		return p.Proof, nil
	}
	if quick {
		note, err := cl.Checkpoint(ctx, log)
		if err != nil {
			return fmt.Errorf("fetch checkpoint: %w", err)
		}
		if v.cp, err = v.openNote(note); err != nil {
			return err
		}
		return v.accept(note, v.cp, prove)
	}
	body, err := cl.Export(ctx, log, 0, -1)
	if err != nil {
		return fmt.Errorf("fetch records: %w", err)
	}
	defer body.Close()
	h, cp, err := v.auditExport(ctx, body, stderr)
	if err != nil {
		var ae *merkle.AuditError
		if errors.As(err, &ae) || cp.Size == 0 {
			return err
		}
		// The records do not make the signed root: find the first that
		// differs, with consistency proofs from the server.
		bad, ferr := v.audit.FirstBad(cp, func(m int64) (tlog.TreeProof, error) { return prove(m, cp.Size) })
		if ferr != nil {
			return fmt.Errorf("%v; naming the record failed: %v", err, ferr)
		}
		return fmt.Errorf("seq %d: the record was changed: from it on, the records no longer match the signed checkpoint of size %d (%v)", bad, cp.Size, err)
	}
	if err := v.accept([]byte(h.Checkpoint), cp, prove); err != nil {
		return err
	}
	return v.checkTail(ctx, cl, h.Log, wait, prove)
}

// auditExport reads an export, verifies its checkpoint's signature and
// re-hashes its records. The checkpoint is returned even on error.
func (v *verifier) auditExport(ctx context.Context, r io.Reader, stderr io.Writer) (*client.ExportHeader, trail.Checkpoint, error) {
	h, records, err := client.ReadExport(r)
	if err != nil {
		return nil, trail.Checkpoint{}, err
	}
	cp, err := v.openNote([]byte(h.Checkpoint))
	if err != nil {
		return h, cp, err
	}
	v.cp = cp
	if h.From != 0 || h.To != cp.Size {
		return h, cp, fmt.Errorf("the export holds seqs %d to %d, not the whole log of %d records its checkpoint covers", h.From, h.To, cp.Size)
	}
	v.audit = merkle.NewAudit(h.Log)
	p := newProgress(stderr, "audit")
	for b, err := range records {
		if err != nil {
			return h, cp, err
		}
		if ctx.Err() != nil {
			return h, cp, ctx.Err()
		}
		if v.audit.Size() >= cp.Size {
			return h, cp, &merkle.AuditError{Seq: v.audit.Size(), Reason: fmt.Sprintf("the export holds more records than its checkpoint covers (%d)", cp.Size)}
		}
		if err := v.audit.Add(b); err != nil {
			return h, cp, err
		}
		p.update(v.audit.Size(), cp.Size, "records")
	}
	p.finish(v.audit.Size(), cp.Size, "records")
	if v.audit.Size() < cp.Size {
		return h, cp, &merkle.AuditError{Seq: v.audit.Size(), Reason: fmt.Sprintf("record is missing: the signed checkpoint covers %d records but only %d are stored (records were deleted)", cp.Size, v.audit.Size())}
	}
	if err := v.audit.Check(cp); err != nil {
		return h, cp, err
	}
	fmt.Fprintf(v.out, "audit: %d records re-hashed; dense seqs; root matches the signed checkpoint\n", cp.Size)
	return h, cp, nil
}

// checkTail checks that records stored past the audited checkpoint are
// signed soon: a record that no checkpoint ever covers was not written by
// the server.
func (v *verifier) checkTail(ctx context.Context, cl *client.Client, log string, wait time.Duration, prove func(from, to int64) (tlog.TreeProof, error)) error {
	body, err := cl.Export(ctx, log, v.cp.Size, client.EndOfLog)
	if err != nil {
		return fmt.Errorf("fetch records past the checkpoint: %w", err)
	}
	_, records, err := client.ReadExport(body)
	if err != nil {
		body.Close()
		return err
	}
	for b, err := range records {
		if err == nil {
			err = v.audit.Add(b)
		}
		if err != nil {
			body.Close()
			return err
		}
	}
	body.Close()
	end := v.audit.Size()
	if end == v.cp.Size {
		fmt.Fprintln(v.out, "tail: no records past the checkpoint")
		return nil
	}
	deadline := time.Now().Add(wait)
	for {
		note, err := cl.Checkpoint(ctx, log)
		if err != nil {
			return fmt.Errorf("fetch checkpoint: %w", err)
		}
		cp, err := v.openNote(note)
		if err != nil {
			return err
		}
		if cp.Size >= end {
			var p tlog.TreeProof
			if cp.Size > end {
				p, err = prove(end, cp.Size)
			}
			root, rerr := v.audit.Root(end)
			if err == nil {
				err = rerr
			}
			if err == nil {
				err = tlog.CheckTree(p, cp.Size, cp.Hash, end, root)
			}
			if err != nil {
				return fmt.Errorf("seq %d..%d: the records past the checkpoint do not match the next signed checkpoint (size %d): %v", v.cp.Size, end-1, cp.Size, err)
			}
			if err := v.accept(note, cp, prove); err != nil {
				return err
			}
			fmt.Fprintf(v.out, "tail: the %d records past the audited checkpoint are covered by the checkpoint of size %d\n", end-v.cp.Size, cp.Size)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("seq %d: stored but not covered by any signed checkpoint (latest size %d) after waiting %s: records %d to %d were not written by this server (forged), or the server has stopped signing: check its log and GET /readyz", cp.Size, cp.Size, wait, cp.Size, end-1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (v *verifier) verifyFile(ctx context.Context, path string, stderr io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h, cp, err := v.auditExport(ctx, f, stderr)
	if err != nil {
		var ae *merkle.AuditError
		if !errors.As(err, &ae) && h != nil && v.audit != nil && v.audit.Size() == cp.Size {
			return fmt.Errorf("%w; offline, the changed record cannot be named: run trail verify --url against the server to name it", err)
		}
		return err
	}
	return v.accept([]byte(h.Checkpoint), cp, nil)
}

// logOf returns the log name: the flag if set, else the origin's last part.
func logOf(origin, flag string) string {
	if flag != "" {
		return flag
	}
	if i := strings.LastIndexByte(origin, '/'); i >= 0 {
		return origin[i+1:]
	}
	return ""
}

func (v *verifier) loadState(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("verify: state: %w", err)
	}
	if err := json.Unmarshal(b, v.state); err != nil {
		return fmt.Errorf("verify: state file %s is corrupt (%v); move it away to start afresh, but know that its memory of old checkpoints is what proves the log only grew", path, err)
	}
	if v.state.Origins == nil {
		v.state.Origins = map[string]seenCheckpoint{}
	}
	return nil
}

func (v *verifier) saveState(path string) error {
	b, err := json.MarshalIndent(v.state, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("verify: state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("verify: state: %w", err)
	}
	return os.Rename(tmp, path)
}
