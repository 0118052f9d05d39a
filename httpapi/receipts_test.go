package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/trail-audit/trail"
)

// TestReceiptsEncoding checks that the receipts, built by appending bytes,
// read exactly as encoding/json writes them, for a batch and a single
// event.
func TestReceiptsEncoding(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	reencode := func(v any) string {
		t.Helper()
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}

	r := ts.post(t, batchJSON(0, 3))
	r.wantStatus(t, http.StatusCreated)
	var batch receiptsBody
	if err := json.Unmarshal(r.body, &batch); err != nil || len(batch.Receipts) != 3 {
		t.Fatalf("batch: got %s (%v), want 3 receipts", r.body, err)
	}
	if want := reencode(batch); string(r.body) != want {
		t.Fatalf("batch: got  %s\nwant %s", r.body, want)
	}

	r = ts.post(t, eventJSON("single-1", 1))
	r.wantStatus(t, http.StatusCreated)
	var one trail.Receipt
	if err := json.Unmarshal(r.body, &one); err != nil || one.ID != "single-1" {
		t.Fatalf("single: got %s (%v), want the receipt of single-1", r.body, err)
	}
	if want := reencode(one); string(r.body) != want {
		t.Fatalf("single: got  %s\nwant %s", r.body, want)
	}
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Fatalf("Content-Type: got %q, want application/json", got)
	}
}
