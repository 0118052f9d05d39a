package client_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/trail-audit/trail/client"
)

// TestReadExport checks that records come out whole and owned by the
// caller, blank lines skipped, whether or not a line fits the reader's
// buffer (1 MiB) and whether or not the last one ends with a newline.
func TestReadExport(t *testing.T) {
	long := `{"id":"b","data":"` + strings.Repeat("x", 3<<20/2) + `"}`
	in := `{"trail_export":1,"log":"main","from":0,"to":3}` + "\n" +
		`{"id":"a"}` + "\n\n" + long + "\r\n" + `{"id":"c"}`
	h, records, err := client.ReadExport(strings.NewReader(in))
	if err != nil || h.Log != "main" || h.To != 3 {
		t.Fatalf("header: got %+v %v, want log main to 3", h, err)
	}
	var got [][]byte
	for b, err := range records {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	want := []string{`{"id":"a"}`, long, `{"id":"c"}`}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], []byte(want[i])) {
			t.Fatalf("record %d: got %d bytes %.40q, want %d bytes %.40q", i, len(got[i]), got[i], len(want[i]), want[i])
		}
	}
}
