package main

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/trail-audit/trail/internal/testserver"
)

// setFileSizeLimit sets RLIMIT_FSIZE of the process pid: with 0, every
// write to a regular file fails with EFBIG, as on a full disk, while pipes
// (its logs) still work.
func setFileSizeLimit(tb testing.TB, pid int, limit uint64) {
	tb.Helper()
	lim := syscall.Rlimit{Cur: limit, Max: ^uint64(0)}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); errno != 0 {
		tb.Fatalf("prlimit RLIMIT_FSIZE=%d on %d: %v", limit, pid, errno)
	}
}

// getStatus answers GET url's status and body.
func getStatus(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyzFollowsCommits makes the store's writes fail for real and
// checks that /readyz says so, then recovers without any write traffic.
func TestReadyzFollowsCommits(t *testing.T) {
	p := MustStartServe(t, t.TempDir())
	testserver.PostNDJSON(t, p.URL, testserver.Payments(1, 2)...)
	if status, body := getStatus(t, p.URL+"/readyz"); status != http.StatusOK {
		t.Fatalf("GET /readyz before: got %d %s, want 200", status, body)
	}

	setFileSizeLimit(t, p.cmd.Process.Pid, 0)
	resp, err := http.Post(p.URL+"/logs", "application/x-ndjson", strings.NewReader(testserver.Payments(3, 1)[0]))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST /logs with writes failing: got %d, want 503", resp.StatusCode)
	}
	status, body := getStatus(t, p.URL+"/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "the last commit failed") {
		t.Fatalf("GET /readyz with writes failing: got %d %s, want 503 naming the failed commit", status, body)
	}
	// The ping that readyz makes must fail too, not clear the state.
	if status, body := getStatus(t, p.URL+"/readyz"); status != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz again with writes failing: got %d %s, want 503", status, body)
	}

	// The disk has room again; no write is sent, and readyz recovers.
	setFileSizeLimit(t, p.cmd.Process.Pid, ^uint64(0))
	if status, body := getStatus(t, p.URL+"/readyz"); status != http.StatusOK {
		t.Fatalf("GET /readyz after writes work again: got %d %s, want 200", status, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(p.URL+"/logs", "application/x-ndjson", strings.NewReader(testserver.Payments(3, 1)[0]))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST /logs after recovery: got %d, want 201", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
