package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/testserver"
)

// TestKeysAndTokens manages keys and pushes with them through the SDK
// against a server with authentication on.
func TestKeysAndTokens(t *testing.T) {
	s := testserver.MustOpen(t, testserver.Config{Auth: &auth.Config{}})
	ctx := t.Context()
	_, admin, err := s.Keys.CreateKey(ctx, &trail.Key{Name: "admin", Scopes: []trail.Scope{trail.ScopeAdmin}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ac := client.New(s.URL, client.WithToken(admin))
	info, key, err := ac.CreateKey(ctx, &trail.Key{Name: "billing", Scopes: []trail.Scope{trail.ScopeWrite, trail.ScopeRead},
		Tenant: "acme", Expires: time.Now().Add(time.Hour)})
	if err != nil || info.State != trail.KeyActive || info.Tenant != "acme" {
		t.Fatalf("CreateKey: got %+v, %v; want an active key bound to acme", info, err)
	}

	if _, err := client.New(s.URL, client.WithRetries(0)).Push(ctx, &trail.Event{Action: "a.b", Actor: trail.Actor{ID: "u"}, Source: trail.Source{Service: "s"}}); !isStatus(err, http.StatusUnauthorized) {
		t.Fatalf("Push without a token: got %v, want 401", err)
	}
	kc := client.New(s.URL, client.WithToken(key))
	res, err := kc.Push(ctx, &trail.Event{Action: "a.b", Actor: trail.Actor{ID: "u"}, Source: trail.Source{Service: "s"}})
	if err != nil {
		t.Fatalf("Push with the key: %v", err)
	}
	b, _, err := kc.Get(ctx, res.Receipts[0].ID)
	if err != nil {
		t.Fatalf("Get with the key: %v", err)
	}
	var rec trail.Record
	if err := json.Unmarshal(b, &rec); err != nil || rec.KeyID != info.ID || rec.Tenant != "acme" {
		t.Fatalf("record: got %s (%v), want key_id %s and tenant acme", b, err, info.ID)
	}

	tok, exp, err := ac.MintToken(ctx, "acme", 5*time.Minute)
	if err != nil || time.Until(exp) > 5*time.Minute {
		t.Fatalf("MintToken: got %q, %s, %v", tok, exp, err)
	}
	if _, _, err := client.New(s.URL, client.WithToken(tok)).Get(ctx, res.Receipts[0].ID); err != nil {
		t.Fatalf("Get with a viewer token of the record's tenant: %v", err)
	}

	if _, err := ac.RevokeKey(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	keys, err := ac.ListKeys(ctx)
	if err != nil || len(keys) != 2 || keys[1].State != trail.KeyRevoked {
		t.Fatalf("ListKeys: got %+v, %v; want the admin key and the revoked one", keys, err)
	}
}

func isStatus(err error, status int) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Status == status
}
