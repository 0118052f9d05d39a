package ingest

import (
	"errors"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// WithoutTree turns off the Merkle hashing and signing so that a benchmark
// can measure their cost against the same run without them. Records then
// carry only their leaf hash and zero hashes for the rest; no real server
// runs this way.
func WithoutTree(cfg *Config) {
	cfg.Signer, cfg.Verifier = nil, ""
	cfg.newTree = func(size int64, _ tlog.HashReader) hasher { return &unhashed{size: size} }
}

// NoSignOnClose makes Close skip the final checkpoint, leaving the log as
// a crash would: records after the latest checkpoint.
func NoSignOnClose(cfg *Config) { cfg.noFinalSign = true }

// unhashed is a hasher that gives each entry the right number of stored
// hashes without computing them.
type unhashed struct{ size, pending int64 }

func (u *unhashed) Size() int64 { return u.size }

func (u *unhashed) Append(entries []*trail.Entry) error {
	for _, e := range entries {
		e.Hashes = append(e.Hashes, make([]tlog.Hash, tlog.StoredHashCount(e.Seq+1)-tlog.StoredHashCount(e.Seq)-1)...)
	}
	u.pending += int64(len(entries))
	return nil
}

func (u *unhashed) Commit()   { u.size, u.pending = u.size+u.pending, 0 }
func (u *unhashed) Rollback() { u.pending = 0 }

func (u *unhashed) Root() (tlog.Hash, error) { return tlog.Hash{}, errors.New("ingest: no tree") }
