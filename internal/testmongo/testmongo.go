// Package testmongo gives tests a fresh database on the MongoDB test server
// that scripts/test.sh starts (FerretDB), named by TRAIL_TEST_MONGODB_URI.
package testmongo

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ServerURI returns the test server's URI. It skips the test if there is
// none, unless CI=true: in CI a missing server is a failure, never a skip.
func ServerURI(tb testing.TB) string {
	tb.Helper()
	uri := os.Getenv("TRAIL_TEST_MONGODB_URI")
	if uri == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("TRAIL_TEST_MONGODB_URI is not set, and CI=true: MongoDB tests must run in CI (scripts/test.sh starts a server)")
		}
		tb.Skip("TRAIL_TEST_MONGODB_URI is not set (scripts/test.sh starts a FerretDB and sets it)")
	}
	return uri
}

// DatabaseURI returns the test server's URI with a fresh database name; the
// database is dropped when the test ends.
func DatabaseURI(tb testing.TB) string {
	tb.Helper()
	u, err := url.Parse(ServerURI(tb))
	if err != nil {
		tb.Fatalf("TRAIL_TEST_MONGODB_URI: %v", err)
	}
	name := "trailtest_" + strings.ToLower(rand.Text()[:12])
	u.Path = "/" + name
	tb.Cleanup(func() {
		// Registered before any store of the test, so it runs after they
		// are closed.
		c, err := mongo.Connect(options.Client().ApplyURI(u.String()))
		if err != nil {
			return
		}
		defer c.Disconnect(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Database(name).Drop(ctx)
	})
	return u.String()
}
