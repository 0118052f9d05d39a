package merkle_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// memHashes is an in-memory hash store: the reference the Tree must match.
type memHashes struct {
	hashes []tlog.Hash
	reads  int
}

func (m *memHashes) ReadHashes(ix []int64) ([]tlog.Hash, error) {
	m.reads += len(ix)
	out := make([]tlog.Hash, len(ix))
	for i, x := range ix {
		if x >= int64(len(m.hashes)) {
			return nil, errors.New("read of an unstored hash")
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

func TestTreeMatchesTlog(t *testing.T) {
	ref := &memHashes{}
	stored := &memHashes{}
	tree := merkle.NewTree(0, stored)
	seq := int64(0)
	for batch := 1; batch <= 40; batch++ {
		var entries []*trail.Entry
		for i := 0; i < batch%7+1; i++ {
			data := []byte{byte(seq), byte(seq >> 8)}
			want, err := tlog.StoredHashes(seq, data, ref)
			if err != nil {
				t.Fatal(err)
			}
			ref.hashes = append(ref.hashes, want...)
			entries = append(entries, &trail.Entry{Record: trail.Record{Seq: seq}, Hashes: []tlog.Hash{tlog.RecordHash(data)}})
			seq++
		}
		if batch%5 == 0 { // a failed commit must leave no trace
			if err := tree.Append(entries); err != nil {
				t.Fatal(err)
			}
			tree.Rollback()
		}
		if err := tree.Append(entries); err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			stored.hashes = append(stored.hashes, e.Hashes...)
		}
		tree.Commit()
		got, err := tree.Root()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := tlog.TreeHash(seq, ref)
		if got != want {
			t.Fatalf("size %d: got root %v, want %v", seq, got, want)
		}
	}
	if stored.reads != 0 {
		t.Fatalf("a tree built from empty read the store %d times, want 0", stored.reads)
	}
	// A tree reopened at a size falls back to the store and agrees.
	re := merkle.NewTree(seq, stored)
	got, err := re.Root()
	want, _ := tlog.TreeHash(seq, ref)
	if err != nil || got != want {
		t.Fatalf("reopened: got %v %v, want %v", got, err, want)
	}
}

func TestKeySignOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "trail.key")
	s, vkey, err := merkle.LoadOrCreateKey(path, "trail.test")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: got %v %v, want 0600", fi.Mode().Perm(), err)
	}
	s2, vkey2, err := merkle.LoadOrCreateKey(path, "ignored")
	if err != nil || vkey2 != vkey || s2.KeyHash() != s.KeyHash() {
		t.Fatalf("reload: got %q %v, want %q", vkey2, err, vkey)
	}
	cp := trail.Checkpoint{Origin: "trail.test/main", Size: 5, Hash: tlog.RecordHash([]byte("x"))}
	msg, err := merkle.Sign(s, cp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := merkle.Open(msg, vkey)
	if err != nil || got != cp {
		t.Fatalf("open: got %+v %v, want %+v", got, err, cp)
	}
	forged := []byte(strings.Replace(string(msg), "\n5\n", "\n6\n", 1))
	if _, err := merkle.Open(forged, vkey); err == nil {
		t.Fatal("a checkpoint with an edited size verified")
	}
	_, otherKey, _ := merkle.LoadOrCreateKey(filepath.Join(t.TempDir(), "other.key"), "trail.test")
	if _, err := merkle.Open(msg, otherKey); err == nil {
		t.Fatal("a checkpoint verified with another key")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := merkle.LoadOrCreateKey(path, "x"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: got %v, want a refusal naming chmod 600", err)
	}
}
