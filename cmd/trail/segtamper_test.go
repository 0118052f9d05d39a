package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/trail-audit/trail/internal/testserver"
)

// TestVerifySegmentTampering damages the segments of a stopped server's
// log: trail verify, or the server's start, must name the damage.
func TestVerifySegmentTampering(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, segs []string)
		start  string // if set, serve must refuse to start, naming this
		verify string // else, verify must fail, naming this
	}{
		{"edited byte in a sealed segment", func(t *testing.T, segs []string) {
			b, _ := os.ReadFile(segs[1])
			b[200] ^= 0x01
			os.WriteFile(segs[1], b, 0o600)
		}, "", "record is missing"},
		{"truncated sealed segment", func(t *testing.T, segs []string) { os.Truncate(segs[1], 3000) }, "is not sealed", ""},
		{"deleted segment", func(t *testing.T, segs []string) { os.Remove(segs[1]) }, "the segments of seqs [", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"--segment-size", "8KiB", "--checkpoint-interval", "50ms"}
			srv := MustStartServe(t, dir, args...)
			for i := range 6 { // a segment rolls after the append that fills it
				testserver.PostNDJSON(t, srv.URL, testserver.Payments(10*i, 10)...)
			}
			if code := srv.Stop(t, syscall.SIGTERM); code != 0 {
				t.Fatalf("trail serve exited %d", code)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
			if len(segs) < 3 {
				t.Fatalf("got %d segments, want at least 3", len(segs))
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
