package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// DefaultTailWait is how long, by default, records stored past the audited
// checkpoint may wait to be signed.
const DefaultTailWait = 3 * time.Second

// An Auditor checks a log against its signed checkpoints, with a verifier
// key pinned out of band (a key fetched from the server under test proves
// nothing). It remembers, in its AuditState, the newest checkpoint it
// verified of each log, and refuses a later checkpoint that does not extend
// it. Failures name the first bad seq where one can be named.
//
// An Auditor is not safe for concurrent use.
type Auditor struct {
	// TailWait is how long Audit lets records stored past the audited
	// checkpoint wait to be covered by a newer one.
	TailWait time.Duration
	// Logf, if not nil, is told of each check that passed, one line a call
	// (without the newline).
	Logf func(format string, args ...any)
	// Progress, if not nil, is called as records are re-hashed, with the
	// count so far and the count the checkpoint covers; final is set on
	// the last call, after every record was read.
	Progress func(done, total int64, final bool)

	c     *Client
	key   string
	state *AuditState
	audit *merkle.Audit    // the records re-hashed in this run
	cp    trail.Checkpoint // the checkpoint the audit is checked against
}

// NewAuditor returns an auditor of the server c talks to (c may be nil for
// AuditExport alone) that trusts verifierKey and remembers checkpoints in
// state (nil: a new, empty one).
func NewAuditor(c *Client, verifierKey string, state *AuditState) *Auditor {
	if state == nil {
		state = &AuditState{}
	}
	return &Auditor{TailWait: DefaultTailWait, c: c, key: verifierKey, state: state}
}

// State returns the auditor's memory of checkpoints, updated by every check
// that passed; save it for the next run.
func (a *Auditor) State() *AuditState { return a.state }

// A CheckpointError means a checkpoint did not verify with the pinned key:
// it is forged, or the key is not the key of this log.
type CheckpointError struct{ Err error }

func (e *CheckpointError) Error() string { return "checkpoint: " + e.Err.Error() }
func (e *CheckpointError) Unwrap() error { return e.Err }

// A MismatchError means the records read do not make the root of the
// signed checkpoint that covers them: a record was changed. Seq is the
// first changed record, or -1 if it cannot be named (offline, there is no
// server to prove consistency against).
type MismatchError struct {
	Seq  int64
	Size int64 // the size of the checkpoint
	Err  error // how the roots differ
}

func (e *MismatchError) Error() string {
	if e.Seq < 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("seq %d: the record was changed: from it on, the records no longer match the signed checkpoint of size %d (%v)", e.Seq, e.Size, e.Err)
}

func (e *MismatchError) Unwrap() error { return e.Err }

func (a *Auditor) logf(format string, args ...any) {
	if a.Logf != nil {
		a.Logf(format, args...)
	}
}

// proveFunc returns a consistency proof from size from to size to.
type proveFunc func(from, to int64) (tlog.TreeProof, error)

// prover fetches consistency proofs of log from the server; with log "",
// of the log the audited checkpoint names.
func (a *Auditor) prover(ctx context.Context, log string) proveFunc {
	return func(from, to int64) (tlog.TreeProof, error) {
		p, err := a.c.Consistency(ctx, logOf(a.cp.Origin, log), from, to)
		if err != nil {
			return nil, err
		}
		return p.Proof, nil
	}
}

// logOf returns the log name: log if set, else the origin's last part.
func logOf(origin, log string) string {
	if log != "" {
		return log
	}
	if i := strings.LastIndexByte(origin, '/'); i >= 0 {
		return origin[i+1:]
	}
	return ""
}

// openNote verifies a checkpoint note's signature with the pinned key.
func (a *Auditor) openNote(note []byte) (trail.Checkpoint, error) {
	cp, err := merkle.Open(note, a.key)
	if err != nil {
		return cp, &CheckpointError{err}
	}
	return cp, nil
}

// Check verifies the latest checkpoint of log ("" for the server's own)
// and that it extends the last one seen of its origin, with a consistency
// proof from the server. It reads no records: it is quick, but it trusts
// that the stored records make the signed root; Audit checks that too.
func (a *Auditor) Check(ctx context.Context, log string) (trail.Checkpoint, error) {
	note, err := a.c.Checkpoint(ctx, log)
	if err != nil {
		return trail.Checkpoint{}, fmt.Errorf("fetch checkpoint: %w", err)
	}
	if a.cp, err = a.openNote(note); err != nil {
		return a.cp, err
	}
	return a.cp, a.accept(note, a.cp, a.prover(ctx, log))
}

// Audit checks log ("" for the server's own) in full, in order:
//  1. the latest checkpoint's signature;
//  2. that it extends the last checkpoint seen of its origin;
//  3. every record it covers: re-hashed, seqs dense and in place, and the
//     root recomputed (a changed record is named with consistency proofs);
//  4. that the records stored past it get signed within TailWait.
//
// It returns the audited checkpoint.
func (a *Auditor) Audit(ctx context.Context, log string) (trail.Checkpoint, error) {
	prove := a.prover(ctx, log)
	body, err := a.c.Export(ctx, log, 0, -1)
	if err != nil {
		return trail.Checkpoint{}, fmt.Errorf("fetch records: %w", err)
	}
	defer body.Close()
	h, cp, err := a.readExport(ctx, body)
	if err != nil {
		return cp, a.nameChanged(err, cp, prove, a.leaves(ctx, log))
	}
	if err := a.accept([]byte(h.Checkpoint), cp, prove); err != nil {
		return cp, err
	}
	return cp, a.checkTail(ctx, h.Log, prove)
}

// AuditExport checks an export (Client.Export, trail export) offline: its
// checkpoint's signature, that it extends the last one seen, and every
// record it covers. A changed record cannot be named offline: the error is
// then a *MismatchError with Seq -1.
func (a *Auditor) AuditExport(ctx context.Context, r io.Reader) (trail.Checkpoint, error) {
	h, cp, err := a.readExport(ctx, r)
	if err != nil {
		return cp, err
	}
	return cp, a.accept([]byte(h.Checkpoint), cp, nil)
}

// leaves re-reads the records of log with from <= seq < to from the
// server and returns their leaf hashes: how FirstBad names a changed
// record without keeping a hash of every record.
func (a *Auditor) leaves(ctx context.Context, log string) func(from, to int64) ([]tlog.Hash, error) {
	return func(from, to int64) ([]tlog.Hash, error) {
		body, err := a.c.Export(ctx, log, from, to)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		_, br, err := readExportHeader(body)
		if err != nil {
			return nil, err
		}
		var hs []tlog.Hash
		for {
			b, err := nextRecord(br)
			if err == io.EOF {
				return hs, nil
			} else if err != nil {
				return nil, err
			}
			hs = append(hs, tlog.RecordHash(b))
		}
	}
}

// nameChanged turns a root mismatch into the first changed seq, with
// consistency proofs from the server and records read again.
func (a *Auditor) nameChanged(err error, cp trail.Checkpoint, prove proveFunc, leaves func(from, to int64) ([]tlog.Hash, error)) error {
	var ae *merkle.AuditError
	if errors.As(err, &ae) || errors.As(err, new(*CheckpointError)) || cp.Size == 0 || a.audit == nil {
		return err
	}
	bad, ferr := a.audit.FirstBad(cp, func(m int64) (tlog.TreeProof, error) { return prove(m, cp.Size) }, leaves)
	if ferr != nil {
		return fmt.Errorf("%v; naming the record failed: %v", err, ferr)
	}
	var me *MismatchError
	if errors.As(err, &me) {
		err = me.Err
	}
	return &MismatchError{Seq: bad, Size: cp.Size, Err: err}
}

// accept checks a verified checkpoint against the state: it must extend
// the last one seen of its origin. Then it becomes the one remembered.
// With prove nil, the consistency proof is built from the audited records.
func (a *Auditor) accept(note []byte, cp trail.Checkpoint, prove proveFunc) error {
	a.logf("checkpoint: %s size %d root %v: signature OK", cp.Origin, cp.Size, cp.Hash)
	prev, ok := a.state.seen(cp.Origin)
	switch {
	case !ok:
		a.logf("consistency: first checkpoint seen of %s", cp.Origin)
	case prev.Size > cp.Size:
		return fmt.Errorf("the log shrank: its checkpoint has size %d but size %d was seen on %s: records were removed or the log was replaced", cp.Size, prev.Size, prev.Seen.Format(time.RFC3339))
	case prev.Size == cp.Size:
		if prev.Root != cp.Hash {
			return fmt.Errorf("the log forked: size %d had root %v on %s and now has %v", cp.Size, prev.Root, prev.Seen.Format(time.RFC3339), cp.Hash)
		}
		a.logf("consistency: same checkpoint as seen before")
	default:
		if err := a.extends(prev, cp, prove); err != nil {
			return err
		}
		a.logf("consistency: extends the checkpoint of size %d seen before", prev.Size)
	}
	a.state.remember(cp.Origin, SeenCheckpoint{Size: cp.Size, Root: cp.Hash, Note: string(note), Seen: time.Now().UTC()})
	return nil
}

// extends checks that cp's tree extends the smaller one seen before.
func (a *Auditor) extends(prev SeenCheckpoint, cp trail.Checkpoint, prove proveFunc) error {
	var err error
	if prove != nil {
		p, perr := prove(prev.Size, cp.Size)
		if perr != nil {
			return fmt.Errorf("consistency proof from %d to %d: %w", prev.Size, cp.Size, perr)
		}
		err = tlog.CheckTree(p, cp.Size, cp.Hash, prev.Size, prev.Root)
	} else {
		// Offline, the records were re-hashed and make cp's root: cp
		// extends prev if their first prev.Size make prev's root, which
		// the audit kept on the way (readExport asked for it).
		if root, rerr := a.audit.Root(prev.Size); rerr != nil {
			err = rerr
		} else if root != prev.Root {
			err = fmt.Errorf("the first %d records hash to %v", prev.Size, root)
		}
	}
	if err != nil {
		return fmt.Errorf("the log was rewritten: the checkpoint of size %d does not extend the one of size %d seen on %s (%v)", cp.Size, prev.Size, prev.Seen.Format(time.RFC3339), err)
	}
	return nil
}

// readExport reads an export, verifies its checkpoint's signature and
// re-hashes its records. The checkpoint is returned even on error.
func (a *Auditor) readExport(ctx context.Context, r io.Reader) (*ExportHeader, trail.Checkpoint, error) {
	a.audit = nil
	h, br, err := readExportHeader(r)
	if err != nil {
		return nil, trail.Checkpoint{}, err
	}
	cp, err := a.openNote([]byte(h.Checkpoint))
	if err != nil {
		return h, cp, err
	}
	a.cp = cp
	if h.From != 0 || h.To != cp.Size {
		return h, cp, fmt.Errorf("the export holds seqs %d to %d, not the whole log of %d records its checkpoint covers", h.From, h.To, cp.Size)
	}
	a.audit = merkle.NewAudit(h.Log)
	if prev, ok := a.state.seen(cp.Origin); ok && prev.Size < cp.Size {
		a.audit.KeepRoot(prev.Size) // for an offline consistency check
	}
	if err := rehash(ctx, br, a.audit, cp.Size, func() { a.progress(cp.Size, false) }); err != nil {
		return h, cp, err
	}
	a.progress(cp.Size, true)
	if a.audit.Size() < cp.Size {
		return h, cp, &merkle.AuditError{Seq: a.audit.Size(), Reason: fmt.Sprintf("record is missing: the signed checkpoint covers %d records but only %d are stored (records were deleted)", cp.Size, a.audit.Size())}
	}
	if err := a.audit.Check(cp); err != nil {
		return h, cp, &MismatchError{Seq: -1, Size: cp.Size, Err: err}
	}
	a.logf("audit: %d records re-hashed; dense seqs; root matches the signed checkpoint", cp.Size)
	return h, cp, nil
}

func (a *Auditor) progress(total int64, final bool) {
	if a.Progress != nil {
		a.Progress(a.audit.Size(), total, final)
	}
}

// checkTail checks that records stored past the audited checkpoint are
// signed soon: a record that no checkpoint ever covers was not written by
// the server.
func (a *Auditor) checkTail(ctx context.Context, log string, prove proveFunc) error {
	if err := a.readTail(ctx, log); err != nil {
		return err
	}
	end := a.audit.Size()
	if end == a.cp.Size {
		a.logf("tail: no records past the checkpoint")
		return nil
	}
	deadline := time.Now().Add(a.TailWait)
	for {
		note, err := a.c.Checkpoint(ctx, log)
		if err != nil {
			return fmt.Errorf("fetch checkpoint: %w", err)
		}
		cp, err := a.openNote(note)
		if err != nil {
			return err
		}
		if cp.Size >= end {
			return a.acceptTail(note, cp, end, prove)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("seq %d: stored but not covered by any signed checkpoint (latest size %d) after waiting %s: records %d to %d were not written by this server (forged), or the server has stopped signing: check its log and GET /readyz", cp.Size, cp.Size, a.TailWait, cp.Size, end-1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readTail adds the records stored past the audited checkpoint.
func (a *Auditor) readTail(ctx context.Context, log string) error {
	body, err := a.c.Export(ctx, log, a.cp.Size, EndOfLog)
	if err != nil {
		return fmt.Errorf("fetch records past the checkpoint: %w", err)
	}
	defer body.Close()
	_, records, err := ReadExport(body)
	if err != nil {
		return err
	}
	for b, err := range records {
		if err == nil {
			err = a.audit.Add(b)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// acceptTail checks that the checkpoint cp, which covers the end records
// read, extends the tree of those records, and accepts it.
func (a *Auditor) acceptTail(note []byte, cp trail.Checkpoint, end int64, prove proveFunc) error {
	var p tlog.TreeProof
	var err error
	if cp.Size > end {
		p, err = prove(end, cp.Size)
	}
	root, rerr := a.audit.Root(end)
	if err == nil {
		err = rerr
	}
	if err == nil {
		err = tlog.CheckTree(p, cp.Size, cp.Hash, end, root)
	}
	if err != nil {
		return fmt.Errorf("seq %d..%d: the records past the checkpoint do not match the next signed checkpoint (size %d): %v", a.cp.Size, end-1, cp.Size, err)
	}
	if err := a.accept(note, cp, prove); err != nil {
		return err
	}
	a.logf("tail: the %d records past the audited checkpoint are covered by the checkpoint of size %d", end-a.cp.Size, cp.Size)
	return nil
}
