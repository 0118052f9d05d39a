package mongo

import (
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/storetest"
)

func TestKeyConformance(t *testing.T) {
	storetest.RunKeys(t, func(t *testing.T) trail.KeyStore { return MustOpenStore(t, "", Config{}) })
}
