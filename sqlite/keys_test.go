package sqlite_test

import (
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/storetest"
)

func TestKeyConformance(t *testing.T) {
	storetest.RunKeys(t, func(t *testing.T) trail.KeyStore { return MustOpenStore(t) })
}

// TestKeysTamper checks that the schema itself refuses every change to a
// key but its revocation and last use, even from a writer that bypasses
// the Store.
func TestKeysTamper(t *testing.T) {
	s := MustOpenStore(t)
	if err := s.CreateKey(t.Context(), storetest.NewKey("k1", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeKey(t.Context(), "k1", storetest.NewKey("k1", 5).Created); err != nil {
		t.Fatal(err)
	}
	db := openRaw(t, s.Path(), "recursive_triggers(ON)")
	for _, q := range []string{
		"DELETE FROM keys",
		"UPDATE keys SET hash = x'00'",
		"UPDATE keys SET scopes = 'write,read,audit,admin'",
		"UPDATE keys SET tenant = ''",
		"UPDATE keys SET expires = NULL",
		"UPDATE keys SET revoked = NULL",
		"UPDATE keys SET revoked = revoked + 1",
		"INSERT OR REPLACE INTO keys SELECT id, name, 'admin', tenant, source, rate, created, expires, NULL, last_used, hash FROM keys",
	} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "trail: ") || !strings.Contains(err.Error(), "key") {
			t.Errorf("%s: got %v, want the trigger's refusal", q, err)
		}
	}
	if _, err := db.Exec("UPDATE keys SET last_used = 1"); err != nil {
		t.Errorf("first last use: got %v, want nil", err)
	}
	if _, err := db.Exec("UPDATE keys SET last_used = 0"); err == nil {
		t.Errorf("last use moved back: got nil, want the trigger's refusal")
	}
}
