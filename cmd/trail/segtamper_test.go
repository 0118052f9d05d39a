package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/trail-audit/trail/internal/testserver"
	"github.com/trail-audit/trail/seglog"
)

// TestVerifySegmentTampering damages the segments of a stopped server's
// log, kept uncompressed or compressed: trail verify, or the server's
// start, must name the damage.
func TestVerifySegmentTampering(t *testing.T) {
	for _, tt := range []struct {
		name       string
		damage     func(t *testing.T, segs []string)
		start      string // if set, serve must refuse to start, naming this
		verify     string // else, verify must fail, naming this
		compressed bool
	}{
		{"edited byte in a sealed segment", func(t *testing.T, segs []string) {
			b, _ := os.ReadFile(segs[1])
			b[200] ^= 0x01
			os.WriteFile(segs[1], b, 0o600)
		}, "", "record is missing", false},
		{"truncated sealed segment", func(t *testing.T, segs []string) { os.Truncate(segs[1], 3000) }, "is not sealed", "", false},
		{"deleted segment", func(t *testing.T, segs []string) { os.Remove(segs[1]) }, "the segments of seqs [", "", false},
		{"edited byte in a compressed segment", func(t *testing.T, segs []string) {
			b, _ := os.ReadFile(segs[1])
			b[200] ^= 0x01
			os.WriteFile(segs[1], b, 0o600)
		}, "", "record is missing", true},
		{"truncated compressed segment", func(t *testing.T, segs []string) { os.Truncate(segs[1], 1000) }, "truncated or edited", "", true},
		{"deleted compressed segment", func(t *testing.T, segs []string) { os.Remove(segs[1]) }, "the segments of seqs [", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"--segment-size", "8KiB", "--checkpoint-interval", "50ms", "--compress-segments=" + strconv.FormatBool(tt.compressed)}
			srv := MustStartServe(t, dir, args...)
			for i := range 6 { // a segment rolls after the append that fills it
				testserver.PostNDJSON(t, srv.URL, testserver.Payments(10*i, 10)...)
			}
			if code := srv.Stop(t, syscall.SIGTERM); code != 0 {
				t.Fatalf("trail serve exited %d", code)
			}
			pattern, want := "*.seg", 3 // the last is active
			if tt.compressed {
				waitCompressed(t, dir)
				pattern, want = "*.segz", 2
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "log", pattern))
			if len(segs) < want {
				t.Fatalf("got %d segments %s, want at least %d", len(segs), pattern, want)
			}
			tt.damage(t, segs)
			if tt.start != "" {
				code, out := runCLI(append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir}, args...)...)
				if code != exitError || !strings.Contains(out, tt.start) {
					t.Fatalf("serve on a damaged log: exit %d, output %q; want %d and %q", code, out, exitError, tt.start)
				}
				return
			}
			srv = MustStartServe(t, dir, args...)
			code, out := runCLI("verify", "--url", srv.URL, "--key-file", filepath.Join(dir, "trail.key"), "--state", filepath.Join(t.TempDir(), "s.json"), "--wait", "1s")
			if code != 1 || !strings.Contains(out, tt.verify) {
				t.Fatalf("verify: exit %d, want 1 and %q; output:\n%s", code, tt.verify, out)
			}
		})
	}
}

// waitCompressed opens the store in dir, as a server would, until every
// sealed segment is compressed: a stopped server may have left some to
// compress.
func waitCompressed(t *testing.T, dir string) {
	t.Helper()
	s, err := seglog.Open(seglog.Config{Dir: dir, SegmentBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WaitCompressed(t.Context()); err != nil {
		t.Fatalf("WaitCompressed: %v", err)
	}
}
