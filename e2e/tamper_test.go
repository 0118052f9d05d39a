package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/testserver"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TestMongoTamper changes a MongoDB store behind trail's back, as a
// database administrator with write access could, and checks that trail
// verify catches it and names the seq. The server is stopped before the
// change (its final checkpoint covers every record) and started again
// after it, so that its start-up integrity check runs on the changed log.
func TestMongoTamper(t *testing.T) {
	const n = 40
	for _, tt := range []struct {
		name   string
		tamper func(ctx context.Context, records *mongo.Collection, log string) (int64, error)
		want   string // in verify's output; "" for an untouched log
		// refused is set if the restarted server must refuse writes, its
		// start-up check having found that the stored tree no longer
		// makes the signed checkpoint.
		refused bool
	}{
		{name: "untouched"},
		{
			name: "edit record bytes",
			tamper: func(ctx context.Context, records *mongo.Collection, log string) (int64, error) {
				var doc struct {
					B string `bson:"b"`
				}
				filter := bson.D{{Key: "log", Value: log}, {Key: "seq", Value: 17}}
				if err := records.FindOne(ctx, filter).Decode(&doc); err != nil {
					return 0, err
				}
				edited := strings.Replace(doc.B, `"amount":1700`, `"amount":9999`, 1)
				if edited == doc.B {
					return 0, fmt.Errorf("record 17 has no amount 1700: %s", doc.B)
				}
				res, err := records.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "b", Value: edited}}}})
				if err != nil {
					return 0, err
				}
				return res.ModifiedCount, nil
			},
			want: "seq 17: the record was changed",
		},
		{
			// The server's start-up check does not see this one: it
			// re-hashes only the records past the latest checkpoint and
			// rebuilds the checkpoint's root from the few stored hashes
			// it needs, which seq 5 does not hold.
			name:   "delete a record",
			tamper: deleteSeq(5),
			want:   "seq 5: record is missing",
		},
		{
			// Seq 31 holds the stored hash of the subtree of seqs 0-31,
			// which the root of the checkpoint of size 40 needs.
			name:    "delete the record holding a subtree hash",
			tamper:  deleteSeq(31),
			want:    "seq 31: record is missing",
			refused: true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			uri, db := MustOpenDB(t)
			dir := t.TempDir()
			key := filepath.Join(dir, "trail.key")
			srv := startTrail(t, "trail-1", dir, serveArgs("127.0.0.1:0", uri, key)...)
			log := ownedLog(t, db, srv.Pid()).ID
			testserver.PostNDJSON(t, srv.URL, testserver.Payments(0, n)...)
			srv.Stop()
			if srv.err != nil {
				t.Fatalf("trail serve did not stop cleanly: %v", srv.err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := db.Collection("checkpoints").FindOne(ctx, bson.D{{Key: "log", Value: log}, {Key: "size", Value: n}}).Err(); err != nil {
				t.Fatalf("no checkpoint of %s at size %d after a graceful stop: %v", log, n, err)
			}

			if tt.tamper != nil {
				changed, err := tt.tamper(ctx, db.Collection("records"), log)
				if err != nil || changed != 1 {
					t.Fatalf("tamper: changed %d documents (%v), want 1", changed, err)
				}
			}

			srv = startTrail(t, "trail-2", dir, serveArgs("127.0.0.1:0", uri, key)...)
			if got := ownedLog(t, db, srv.Pid()).ID; got != log {
				t.Fatalf("the restarted server writes log %s, want %s (released by the first)", got, log)
			}
			code, out := verifyLog(t, srv.URL, key, log)
			if tt.want == "" {
				if code != 0 || !strings.Contains(out, "root matches the signed checkpoint") {
					t.Fatalf("verify of an untouched log: exit %d, want 0; output:\n%s", code, out)
				}
			} else if code != 1 || !strings.Contains(out, tt.want) {
				t.Fatalf("verify: exit %d, want 1 and %q; output:\n%s", code, tt.want, out)
			} else {
				t.Logf("verify: exit 1: %s", lastLine(out))
			}

			status, body := get(t, srv.URL+"/readyz")
			if tt.refused {
				if status != http.StatusServiceUnavailable || !strings.Contains(body, "integrity check") {
					t.Errorf("GET /readyz after the restart: got %d %s, want 503 naming the integrity check", status, body)
				}
				if status := postOne(t, srv.URL); status != http.StatusServiceUnavailable {
					t.Errorf("POST /logs after the restart: got %d, want 503 (writes refused)", status)
				}
			} else if status != http.StatusOK {
				t.Errorf("GET /readyz after the restart: got %d %s, want 200", status, body)
			}
		})
	}
}

// deleteSeq returns a tamper function that deletes the record at seq.
func deleteSeq(seq int64) func(context.Context, *mongo.Collection, string) (int64, error) {
	return func(ctx context.Context, records *mongo.Collection, log string) (int64, error) {
		res, err := records.DeleteOne(ctx, bson.D{{Key: "log", Value: log}, {Key: "seq", Value: seq}})
		if err != nil {
			return 0, err
		}
		return res.DeletedCount, nil
	}
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// postOne posts one event and returns the status.
func postOne(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Post(url+"/logs", "application/json", strings.NewReader(`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}
