package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/testserver"
	"go.mongodb.org/mongo-driver/v2/bson"
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

// TestAbandonedLogIsSigned kills a replica whose newest records no
// checkpoint covers yet and never replaces it. Another replica must sign
// that idle log's tail, so that verification does not take the unsigned
// records for forged ones.
func TestAbandonedLogIsSigned(t *testing.T) {
	uri, db := MustOpenDB(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "trail.key")

	// A signs once, right after its first commit, then not for an hour.
	a := startTrail(t, "trail-a", dir, serveArgs("127.0.0.1:0", uri, key, "--checkpoint-interval", "1h", "--lease-ttl", "1m")...)
	logA := ownedLog(t, db, a.Pid()).ID
	testserver.PostNDJSON(t, a.URL, testserver.Payments(0, 10)...)
	testserver.PostNDJSON(t, a.URL, testserver.Payments(0, 10)...)
	a.Kill()

	// B cannot take A's log (its lease runs for a minute): it writes a new
	// one, and signs A's idle tail with the shared key.
	b := startTrail(t, "trail-b", dir, serveArgs("127.0.0.1:0", uri, key, "--lease-ttl", "1m")...)
	if got := ownedLog(t, db, b.Pid()).ID; got == logA {
		t.Fatalf("B writes %s, the log of A whose lease has not expired", got)
	}
	cps := db.Collection("checkpoints")
	waitFor(t, 30*time.Second, "a checkpoint of the abandoned log at size 20", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return cps.FindOne(ctx, bson.D{{Key: "log", Value: logA}, {Key: "size", Value: 20}}).Err() == nil
	})
	code, out := verifyLog(t, b.URL, key, logA)
	if code != 0 || !strings.Contains(out, "root matches the signed checkpoint") || !strings.Contains(out, "no records past the checkpoint") {
		t.Fatalf("verify of the abandoned log: exit %d, want 0; output:\n%s", code, out)
	}
}
