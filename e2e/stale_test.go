package e2e_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trail-audit/trail/client"
)

// TestStaleReplica freezes a replica (SIGSTOP) with writes in flight, lets
// a new replica take its log over once the lease has expired, and then
// thaws the old one: a writer that does not know it lost its lease. It
// must not store anything in the log it lost (the lease check and the
// unique (log, seq) index fence it), its requests in flight must get 503
// (or a 2xx only for what is stored), and it must go on serving on a log
// of its own.
func TestStaleReplica(t *testing.T) {
	uri, db := MustOpenDB(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "trail.key")
	const ttl = 2 * time.Second
	a := startTrail(t, "trail-a", dir, serveArgs("127.0.0.1:0", uri, key, "--lease-ttl", ttl.String())...)
	logA := ownedLog(t, db, a.Pid()).ID

	l := newLedger()
	const workers = 4
	prodA := startRawProducer(t, a.URL, "e2e.stale", workers, l)
	waitFor(t, 60*time.Second, "A acknowledges 100 events", func() bool {
		n, _ := l.since(logA, 0)
		return n >= 100
	})

	// Freeze A with requests in flight; it keeps its sockets but does
	// nothing, not even renew its lease.
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGCONT) }) // before Stop's SIGTERM
	waitFor(t, 3*ttl, "the frozen replica's lease expires", func() bool {
		for _, d := range readLogs(t, db) {
			if d.ID == logA && time.Now().After(d.Expires) {
				return true
			}
		}
		return false
	})
	c := startTrail(t, "trail-c", dir, serveArgs("127.0.0.1:0", uri, key, "--lease-ttl", ttl.String())...)
	if got := ownedLog(t, db, c.Pid()); got.ID != logA {
		t.Fatalf("replica C writes %s, want the frozen replica's %s", got.ID, logA)
	}
	prodC := startRawProducer(t, c.URL, "e2e.stale", workers, l)
	from := ownedLog(t, db, c.Pid()).Committed
	waitFor(t, 60*time.Second, "C acknowledges 100 events", func() bool {
		n, _ := l.since(logA, from)
		return n >= 100
	})

	// Thaw A. Its lease is gone, so it must step down from logA.
	thawed := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "A takes a log of its own and acknowledges events there", func() bool {
		for _, ans := range prodA.snapshot() {
			if ans.sent.After(thawed) && ans.status/100 == 2 {
				return true
			}
		}
		return false
	})
	logA2 := ownedLog(t, db, a.Pid()).ID
	if logA2 == logA {
		t.Fatalf("the thawed replica still owns %s", logA)
	}
	waitFor(t, 60*time.Second, "C acknowledges 50 more events", func() bool {
		n, _ := l.since(logA, from)
		return n >= 150
	})
	prodA.Stop()
	prodC.Stop()

	var refused, stale int
	for _, ans := range prodA.snapshot() {
		if ans.sent.Before(thawed) && ans.got.After(thawed) {
			stale++
			if ans.status == http.StatusServiceUnavailable {
				refused++
			}
		}
	}
	t.Logf("figures: A frozen for %v; %d requests in flight at the thaw, %d of them answered 503; A then writes %s",
		thawed.Sub(frozen).Round(time.Millisecond), stale, refused, logA2)

	logs := checkStored(t, client.New(c.URL), db, l)
	for _, d := range logs {
		if code, out := verifyLog(t, c.URL, key, d.ID); code != 0 {
			t.Errorf("trail verify --log %s: exit %d, want 0; output:\n%s", d.ID, code, out)
		}
	}
	var sizes []string
	for _, d := range logs {
		state := ""
		if d.Sealed {
			state = " (sealed)"
		}
		sizes = append(sizes, fmt.Sprintf("%s=%d%s", d.ID, d.Committed, state))
	}
	t.Logf("logs: %s", strings.Join(sizes, " "))
}
