package e2e_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/testserver"
	"go.mongodb.org/mongo-driver/v2/bson"
)

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
