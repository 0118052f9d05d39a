package seglog

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestCodecs compresses a segment with each codec and reads it back: the
// reader takes the codec from the file's magic, so that segments written
// with zstd, the first codec, still read after the default became S2; a
// file of another magic is refused.
func TestCodecs(t *testing.T) {
	seg, _ := benchSegment(t, "random")
	want, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []codec{s2Codec{}, newZstd(zstd.SpeedFastest)} {
		dst := filepath.Join(t.TempDir(), "x.segz")
		if err := compressFile(seg, dst, c, nil); err != nil {
			t.Fatalf("%s: %v", c.magic(), err)
		}
		z, err := openZseg(dst, newChunkCache(0))
		if err != nil {
			t.Fatalf("%s: %v", c.magic(), err)
		}
		if z.codec.magic() != c.magic() || z.size != int64(len(want)) {
			t.Fatalf("%s: got codec %s and size %d, want %s and %d", c.magic(), z.codec.magic(), z.size, c.magic(), len(want))
		}
		var got []byte
		for i := range z.chunks {
			b, err := z.chunk(i)
			if err != nil {
				t.Fatalf("%s: chunk %d: %v", c.magic(), i, err)
			}
			got = append(got, b...)
		}
		z.f.Close()
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: the chunks hold %d bytes that differ from the segment's %d", c.magic(), len(got), len(want))
		}
		b, _ := os.ReadFile(dst)
		copy(b[len(b)-8:], "TRLSEGX1")
		os.WriteFile(dst, b, 0o600)
		if _, err := openZseg(dst, newChunkCache(0)); err == nil {
			t.Fatalf("%s: a file of an unknown magic opened", c.magic())
		}
	}
}
