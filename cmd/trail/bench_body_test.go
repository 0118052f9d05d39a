package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// TestBenchEncode checks that the generator's hand-built bodies are events
// the server accepts, of about 600 bytes by default, with the ids given.
func TestBenchEncode(t *testing.T) {
	for _, ids := range []bool{true, false} {
		cfg := &benchConfig{ids: ids, tenant: `acme "q" é`, action: "bench.event", dataBytes: 280}
		l := newBenchLoad(context.Background(), cfg, nil)
		rng := rand.New(rand.NewPCG(1, 2))
		body, gotIDs := l.encode(nil, nil, rng, 7, 3)
		events, err := trail.ParseBatch(body, trail.DefaultLimits)
		if err != nil {
			t.Fatalf("ids %v: got %v for body %s, want valid events", ids, err, body)
		}
		for i, e := range events {
			if e.ID != gotIDs[i] || (e.ID != "") != ids || e.Tenant != cfg.tenant || e.RequestID != fmt.Sprint("req-", 7+i) {
				t.Fatalf("ids %v: event %d: got %+v (id %q given), want tenant %q and request_id req-%d", ids, i, e, gotIDs[i], cfg.tenant, 7+i)
			}
		}
		one, _ := l.encode(nil, nil, rng, 0, 1)
		if _, err := trail.ParseEvent(one, trail.DefaultLimits); err != nil || one[0] != '{' {
			t.Fatalf("single event: got %v for %s, want one valid object", err, one)
		}
		if ids && (len(one) < 550 || len(one) > 650) {
			t.Fatalf("event size: got %d bytes, want about 600: %s", len(one), one)
		}
	}
}

// TestScanReceipts checks the receipt scanner on both answer shapes and
// refuses answers that do not match what was sent.
func TestScanReceipts(t *testing.T) {
	leaf := func(s string) (string, tlog.Hash) {
		h := tlog.Hash(sha256.Sum256([]byte(s)))
		return base64.StdEncoding.EncodeToString(h[:]), h
	}
	receipt := func(id string) string {
		b64, _ := leaf(id)
		return fmt.Sprintf(`{"id":%q,"log":"main","seq":1,"received_at":"2026-01-02T03:04:05Z","leaf_hash":%q}`, id, b64)
	}
	batch := `{"receipts":[` + receipt("a") + "," + receipt("b") + "]}\n"
	acks, err := scanReceipts(nil, []byte(batch), []string{"a", ""})
	_, la := leaf("a")
	_, lb := leaf("b")
	if err != nil || len(acks) != 2 || acks[0] != (ack{"a", la}) || acks[1] != (ack{"b", lb}) {
		t.Fatalf("batch: got %+v, %v; want acks a and b with their leaf hashes", acks, err)
	}
	if acks, err = scanReceipts(nil, []byte(receipt("c")), []string{"c"}); err != nil || len(acks) != 1 || acks[0].id != "c" {
		t.Fatalf("single: got %+v, %v; want the ack of c", acks, err)
	}
	for _, tt := range []struct {
		answer string
		ids    []string
		want   string
	}{
		{batch, []string{"a", "x"}, `for id "b", want "x"`},
		{batch, []string{"a", "b", "c"}, "receipt 2 of 3: no \"id\" member"},
		{batch, []string{"a"}, "more receipts"},
		{strings.Replace(batch, `"leaf_hash":"`, `"leaf_hash":"!`, 1), []string{"a", "b"}, "not a base64"},
	} {
		if _, err := scanReceipts(nil, []byte(tt.answer), tt.ids); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("answer %s, ids %q: got %v, want an error with %q", tt.answer, tt.ids, err, tt.want)
		}
	}
}
