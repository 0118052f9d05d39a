package seglog

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// randomHashes returns n random id hashes.
func randomHashes(r *rand.Rand, n int) []int64 {
	hs := make([]int64, n)
	for i := range hs {
		hs[i] = r.Int64()
	}
	return hs
}

// falsePositives returns the share of hs, none of them added, that f may
// hold.
func falsePositives(f *idFilter, hs []int64) float64 {
	var n int
	for _, h := range hs {
		if f.mayHave(h) {
			n++
		}
	}
	return float64(n) / float64(len(hs))
}

func TestIDFilterNoFalseNegatives(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, capacity := range []int64{100, minFilterCap} {
		f := newIDFilter(capacity)
		added := randomHashes(r, 60000)
		for off := 0; off < len(added); {
			n := min(1+r.IntN(1500), len(added)-off)
			f.add(added[off : off+n]...)
			off += n
		}
		for i, h := range added {
			if !f.mayHave(h) {
				t.Fatalf("capacity %d: id hash %d (added %d of %d): got mayHave false, want true", capacity, h, i, len(added))
			}
		}
		// Also the FNV hashes of real ids, whose bits are less uniform.
		ids := make([]int64, 10000)
		for i := range ids {
			ids[i] = idHash(randomID(r))
		}
		f.add(ids...)
		for _, h := range ids {
			if !f.mayHave(h) {
				t.Fatalf("capacity %d: id hash %d: got mayHave false, want true", capacity, h)
			}
		}
		// Many stages add their rates; one stage stays under 1%.
		want := 0.08
		if capacity == minFilterCap {
			want = 0.01
		}
		got := falsePositives(f, randomHashes(r, 100000))
		t.Logf("capacity %d, %d stages, %d KiB: false positive rate %.4f", capacity, len(f.stages), f.bytes()>>10, got)
		if got > want {
			t.Errorf("capacity %d, %d stages: got false positive rate %.4f, want at most %.2f", capacity, len(f.stages), got, want)
		}
	}
}

// randomID returns an id like the SDK's: a UUID's text.
func randomID(r *rand.Rand) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 36)
	for i := range b {
		b[i] = hex[r.IntN(16)]
	}
	b[8], b[13], b[18], b[23] = '-', '-', '-', '-'
	return string(b)
}

func TestIDFilterRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	f := newIDFilter(1000)
	added := randomHashes(r, 5000) // several stages
	f.add(added...)
	path := filepath.Join(t.TempDir(), filterFile)
	if err := writeIDFilter(path, f, 4321); err != nil {
		t.Fatal(err)
	}
	g, mark, err := readIDFilter(path)
	if err != nil {
		t.Fatalf("readIDFilter: %v", err)
	}
	if mark != 4321 {
		t.Errorf("mark: got %d, want 4321", mark)
	}
	if len(g.stages) != len(f.stages) || len(f.stages) < 2 {
		t.Fatalf("stages: got %d, want %d (at least 2)", len(g.stages), len(f.stages))
	}
	for i, b := range f.stages {
		if c := g.stages[i]; c.cap != b.cap || c.n != b.n || len(c.words) != len(b.words) {
			t.Fatalf("stage %d: got cap %d n %d words %d, want cap %d n %d words %d", i, c.cap, c.n, len(c.words), b.cap, b.n, len(b.words))
		}
	}
	for _, h := range added {
		if !g.mayHave(h) {
			t.Fatalf("id hash %d: got mayHave false after the round trip, want true", h)
		}
	}
	for _, h := range randomHashes(r, 20000) {
		if g.mayHave(h) != f.mayHave(h) {
			t.Fatalf("id hash %d: got mayHave %v after the round trip, want %v", h, g.mayHave(h), f.mayHave(h))
		}
	}
}

func TestIDFilterDamaged(t *testing.T) {
	f := newIDFilter(100)
	f.add(randomHashes(rand.New(rand.NewPCG(5, 6)), 300)...)
	good := f.marshal(300)
	cases := map[string]func([]byte) []byte{
		"empty":     func(p []byte) []byte { return nil },
		"truncated": func(p []byte) []byte { return p[:len(p)-9] },
		"magic":     func(p []byte) []byte { p[0] ^= 1; return p },
		"mark":      func(p []byte) []byte { p[len(filterMagic)] ^= 0x80; return p },
		"word":      func(p []byte) []byte { p[len(p)/2] ^= 4; return p },
		"checksum":  func(p []byte) []byte { p[len(p)-1] ^= 1; return p },
		"zeroed": func(p []byte) []byte {
			clear(p[len(filterMagic)+12 : len(p)-4])
			return p
		},
		"longer": func(p []byte) []byte { return append(p, 0, 0, 0, 0, 0, 0, 0, 0) },
	}
	for name, damage := range cases {
		if _, _, err := unmarshalIDFilter(damage(append([]byte(nil), good...))); !errors.Is(err, errBadFilter) {
			t.Errorf("%s: got error %v, want %v", name, err, errBadFilter)
		}
	}
	if _, mark, err := unmarshalIDFilter(good); err != nil || mark != 300 {
		t.Errorf("undamaged: got mark %d, error %v; want 300, nil", mark, err)
	}
}
