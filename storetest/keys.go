package storetest

import (
	"crypto/sha256"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
)

// RunKeys runs the conformance suite of trail.KeyStore. open must return a
// fresh store with no keys, as Run's open does.
func RunKeys(t *testing.T, open func(t *testing.T) trail.KeyStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s trail.KeyStore)
	}{
		{"CreateGet", testKeyCreateGet},
		{"Conflict", testKeyConflict},
		{"List", testKeyList},
		{"Revoke", testKeyRevoke},
		{"Touch", testKeyTouch},
		{"TokenSecret", testTokenSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// keyTime is a fixed creation time; nanoseconds check that stores keep them.
var keyTime = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)

// NewKey returns a valid key with the id, created n seconds after a fixed
// time, bound to tenant "acme" and source "billing", with a rate.
func NewKey(id string, n int) *trail.Key {
	return &trail.Key{
		ID: id, Name: "key " + id, Scopes: []trail.Scope{trail.ScopeWrite, trail.ScopeRead},
		Tenant: "acme", Source: "billing", Rate: 12.5,
		Created: keyTime.Add(time.Duration(n) * time.Second),
		Expires: keyTime.Add(90 * 24 * time.Hour),
		Hash:    sha256.Sum256([]byte("secret " + id)),
	}
}

func mustGetKey(t *testing.T, s trail.KeyStore, id string) *trail.Key {
	t.Helper()
	k, err := s.GetKey(t.Context(), id)
	if err != nil {
		t.Fatalf("GetKey(%s): %v", id, err)
	}
	return k
}

func mustCreateKey(t *testing.T, s trail.KeyStore, k *trail.Key) {
	t.Helper()
	if err := s.CreateKey(t.Context(), k); err != nil {
		t.Fatalf("CreateKey(%s): %v", k.ID, err)
	}
}

func testKeyCreateGet(t *testing.T, s trail.KeyStore) {
	if _, err := s.GetKey(t.Context(), "absent"); !errors.Is(err, trail.ErrKeyNotFound) {
		t.Fatalf("GetKey of an absent id: got %v, want ErrKeyNotFound", err)
	}
	want := NewKey("k1", 0)
	mustCreateKey(t, s, want)
	if got := mustGetKey(t, s, "k1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("GetKey: got %+v, want %+v", got, want)
	}
	unbound := &trail.Key{ID: "k2", Name: "admin", Scopes: []trail.Scope{trail.ScopeAdmin}, Created: keyTime}
	mustCreateKey(t, s, unbound)
	if got := mustGetKey(t, s, "k2"); !reflect.DeepEqual(got, unbound) {
		t.Fatalf("GetKey of an unbound key: got %+v, want %+v", got, unbound)
	}
	bad := NewKey("BAD_ID", 0)
	if err := s.CreateKey(t.Context(), bad); trail.ErrorCode(err) != trail.EINVALID {
		t.Fatalf("CreateKey of an invalid key: got %v, want EINVALID", err)
	}
}

func testKeyConflict(t *testing.T, s trail.KeyStore) {
	mustCreateKey(t, s, NewKey("k1", 0))
	other := NewKey("k1", 5)
	other.Name = "impostor"
	if err := s.CreateKey(t.Context(), other); trail.ErrorCode(err) != trail.ECONFLICT {
		t.Fatalf("CreateKey of a taken id: got %v, want ECONFLICT", err)
	}
	if got := mustGetKey(t, s, "k1"); got.Name != "key k1" {
		t.Fatalf("after a conflict: got name %q, want %q", got.Name, "key k1")
	}
}

func testKeyList(t *testing.T, s trail.KeyStore) {
	keys, err := s.ListKeys(t.Context())
	if err != nil || len(keys) != 0 {
		t.Fatalf("ListKeys of a fresh store: got %v, %v; want none", keys, err)
	}
	// Created out of order: the list is by creation time.
	for i, id := range []string{"c", "a", "b"} {
		mustCreateKey(t, s, NewKey(id, []int{3, 1, 2}[i]))
	}
	keys, err = s.ListKeys(t.Context())
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.ID)
	}
	if !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Fatalf("ListKeys: got %v, want [a b c]", got)
	}
	if !reflect.DeepEqual(keys[0], NewKey("a", 1)) {
		t.Fatalf("ListKeys[0]: got %+v, want %+v", keys[0], NewKey("a", 1))
	}
}

func testKeyRevoke(t *testing.T, s trail.KeyStore) {
	ctx := t.Context()
	if _, err := s.RevokeKey(ctx, "absent", keyTime); !errors.Is(err, trail.ErrKeyNotFound) {
		t.Fatalf("RevokeKey of an absent id: got %v, want ErrKeyNotFound", err)
	}
	mustCreateKey(t, s, NewKey("k1", 0))
	first := keyTime.Add(time.Hour)
	k, err := s.RevokeKey(ctx, "k1", first)
	if err != nil || !k.Revoked.Equal(first) {
		t.Fatalf("RevokeKey: got %+v, %v; want revoked at %s", k, err, first)
	}
	// A second revocation keeps the first time: revocation is one-way.
	k, err = s.RevokeKey(ctx, "k1", first.Add(time.Hour))
	if err != nil || !k.Revoked.Equal(first) {
		t.Fatalf("second RevokeKey: got %+v, %v; want revoked at %s", k, err, first)
	}
	got := mustGetKey(t, s, "k1")
	want := NewKey("k1", 0)
	want.Revoked = first
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetKey after RevokeKey: got %+v, want %+v", got, want)
	}
}

func testKeyTouch(t *testing.T, s trail.KeyStore) {
	ctx := t.Context()
	if err := s.TouchKey(ctx, "absent", keyTime); err != nil {
		t.Fatalf("TouchKey of an absent id: got %v, want nil", err)
	}
	mustCreateKey(t, s, NewKey("k1", 0))
	later := keyTime.Add(time.Minute)
	for _, at := range []time.Time{keyTime, later, keyTime.Add(time.Second)} {
		if err := s.TouchKey(ctx, "k1", at); err != nil {
			t.Fatalf("TouchKey(%s): %v", at, err)
		}
	}
	// Last use only moves forward.
	if got := mustGetKey(t, s, "k1").LastUsed; !got.Equal(later) {
		t.Fatalf("LastUsed: got %s, want %s", got, later)
	}
}

func testTokenSecret(t *testing.T, s trail.KeyStore) {
	ctx := t.Context()
	var wg sync.WaitGroup
	got := make([][]byte, 4)
	errs := make([]error, len(got))
	for i := range got {
		wg.Go(func() { got[i], errs[i] = s.TokenSecret(ctx, []byte{'a' + byte(i), 'x'}) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("TokenSecret: %v", errs[i])
		}
		if string(got[i]) != string(got[0]) {
			t.Fatalf("TokenSecret of racing callers: got %q and %q, want one secret", got[0], got[i])
		}
	}
	again, err := s.TokenSecret(ctx, []byte("other"))
	if err != nil || string(again) != string(got[0]) {
		t.Fatalf("TokenSecret later: got %q, %v; want %q", again, err, got[0])
	}
}
