package ui_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/testserver"
	"github.com/trail-audit/trail/ui"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// verifyCase is one call of trailVerify.verify in the page.
type verifyCase struct {
	Name   string            `json:"name"`
	Bytes  string            `json:"bytes"`
	Proof  trail.RecordProof `json:"proof"`
	Key    string            `json:"key"`
	WantOK bool              `json:"want_ok"`
}

// TestVerifyMatchesTlog runs the page's verifier on proofs that
// golang.org/x/mod/sumdb/tlog made, for every record of every tree of 1 to
// 17 records, and on broken ones, so that the port of CheckRecord to
// JavaScript agrees with the original at every tree shape.
func TestVerifyMatchesTlog(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "trail.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := note.GenerateKey(rand.Reader, "trail.test")

	const max = 17
	var stored []tlog.Hash
	var records [][]byte
	var cases []verifyCase
	hr := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = stored[x]
		}
		return out, nil
	})
	for size := int64(1); size <= max; size++ {
		rec := fmt.Appendf(nil, `{"id":"r%d"}`, size-1)
		hs, err := tlog.StoredHashes(size-1, rec, hr)
		if err != nil {
			t.Fatal(err)
		}
		stored, records = append(stored, hs...), append(records, rec)
		root, err := tlog.TreeHash(size, hr)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := note.Sign(&note.Note{Text: string(trail.Checkpoint{Origin: "trail.test/main", Size: size, Hash: root}.Marshal())}, signer)
		if err != nil {
			t.Fatal(err)
		}
		for n := range size {
			p, err := tlog.ProveRecord(size, n, hr)
			if err != nil {
				t.Fatal(err)
			}
			if p == nil {
				p = tlog.RecordProof{}
			}
			rp := trail.RecordProof{ID: "x", Log: "main", Seq: n, Size: size, LeafHash: tlog.RecordHash(records[n]), Proof: p, Checkpoint: string(msg)}
			name := fmt.Sprintf("size %d seq %d", size, n)
			cases = append(cases, verifyCase{name, string(records[n]), rp, vkey, true})
			if n+1 < size { // the right bytes at the wrong position
				wrong := rp
				wrong.Seq = n + 1
				wrong.LeafHash = tlog.RecordHash(records[n])
				cases = append(cases, verifyCase{name + " as seq+1", string(records[n]), wrong, vkey, false})
			}
			if len(p) > 0 { // a bent path
				bent := rp
				bent.Proof = append(tlog.RecordProof{}, p...)
				bent.Proof[len(p)-1][0] ^= 1
				cases = append(cases, verifyCase{name + " bent path", string(records[n]), bent, vkey, false})
			}
		}
		cases = append(cases, verifyCase{fmt.Sprintf("size %d other key", size), string(rec), trail.RecordProof{
			Seq: size - 1, Size: size, LeafHash: tlog.RecordHash(rec), Proof: tlog.RecordProof{}, Checkpoint: string(msg)}, otherKey, false})
	}

	srv := testserver.MustOpen(t, testserver.Config{UI: &ui.Config{}})
	ctx := MustOpenBrowser(t)
	run(t, ctx, "open", chromedp.Navigate(srv.URL+"/ui/"))
	waitJS(t, ctx, "verify.js", `typeof window.trailVerify === 'object'`)
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	got := eval[[]string](t, ctx, fmt.Sprintf(`Promise.all((%s).map(async c => {
		const r = await window.trailVerify.verify(new TextEncoder().encode(c.bytes), c.proof, c.key);
		return r.ok === c.want_ok ? '' : c.name + ': got ' + (r.ok ? 'ok' : r.reason) + ', want ' + (c.want_ok ? 'ok' : 'a failure');
	}))`, in))
	failed := 0
	for _, g := range got {
		if g != "" {
			failed++
			t.Error(g)
		}
	}
	if len(got) != len(cases) {
		t.Fatalf("results: got %d, want %d", len(got), len(cases))
	}
	t.Logf("%d cases, %d failed", len(cases), failed)
}
