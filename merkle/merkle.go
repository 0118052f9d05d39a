// Package merkle gives trail's logs their RFC 6962 Merkle trees and signed
// checkpoints. The tree maths and proofs are golang.org/x/mod/sumdb/tlog;
// checkpoints are C2SP signed notes from golang.org/x/mod/sumdb/note with
// an Ed25519 key. Stores keep the hashes; this package only computes.
package merkle

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// LoadOrCreateKey loads the note signer key kept at path, creating a new
// Ed25519 key named name there (mode 0600) if the file does not exist. It
// returns the signer and the matching verifier key. A key file that others
// can read is refused: the key is what makes checkpoints trustworthy.
func LoadOrCreateKey(path, name string) (note.Signer, string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		skey, _, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			return nil, "", fmt.Errorf("merkle: generate key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, "", fmt.Errorf("merkle: create key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, "", fmt.Errorf("merkle: create key: %w", err)
		}
		_, err = f.WriteString(skey + "\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, "", fmt.Errorf("merkle: write key %s: %w", path, err)
		}
		b = []byte(skey)
	} else if err != nil {
		return nil, "", fmt.Errorf("merkle: read key: %w", err)
	} else if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, "", fmt.Errorf("merkle: key file %s has mode %o; others must not read it: run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return ParseKey(strings.TrimSpace(string(b)))
}

// ParseKey parses a note signer key and derives its verifier key.
func ParseKey(skey string) (note.Signer, string, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("merkle: signer key: %w", err)
	}
	// The key is PRIVATE+KEY+name+hash+base64(alg || seed).
	parts := strings.SplitN(skey, "+", 5) // base64 may hold "+"
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return nil, "", fmt.Errorf("merkle: signer key is not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, "", fmt.Errorf("merkle: verifier key: %w", err)
	}
	return s, vkey, nil
}

// Sign returns c as a signed note.
func Sign(s note.Signer, c trail.Checkpoint) ([]byte, error) {
	b, err := note.Sign(&note.Note{Text: string(c.Marshal())}, s)
	if err != nil {
		return nil, fmt.Errorf("merkle: sign checkpoint: %w", err)
	}
	return b, nil
}

// Open verifies a signed checkpoint note against the verifier key and
// returns the checkpoint it states.
func Open(msg []byte, vkey string) (trail.Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return trail.Checkpoint{}, fmt.Errorf("merkle: verifier key: %w", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return trail.Checkpoint{}, fmt.Errorf("merkle: checkpoint signature: %w", err)
	}
	return trail.ParseCheckpoint([]byte(n.Text))
}

// Reader reads the stored hashes of log from store.
func Reader(ctx context.Context, store trail.Reader, log string) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return store.ReadHashes(ctx, log, indexes)
	})
}

// ProveRecord proves that the record at seq is in the tree of log of the
// given size.
func ProveRecord(ctx context.Context, store trail.Reader, log string, seq, size int64) (tlog.RecordProof, error) {
	if seq < 0 || seq >= size {
		return nil, trail.Errorf(trail.EINVALID, "record seq %d is not in a tree of size %d", seq, size)
	}
	return tlog.ProveRecord(size, seq, Reader(ctx, store, log))
}

// ProveTree proves that the tree of log of size from is a prefix of the
// tree of size to.
func ProveTree(ctx context.Context, store trail.Reader, log string, from, to int64) (tlog.TreeProof, error) {
	if from < 1 || from > to {
		return nil, trail.Errorf(trail.EINVALID, "want 0 < from <= to, got from=%d to=%d", from, to)
	}
	return tlog.ProveTree(to, from, Reader(ctx, store, log))
}
