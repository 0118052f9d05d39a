package trail

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// storedSeeds returns the stored bytes of the prepared seed events, with
// and without a key id.
func storedSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for i, s := range prepareSeeds {
		e, err := ParseEvent([]byte(s), DefaultLimits)
		if err != nil {
			tb.Fatalf("seed %d: %v", i, err)
		}
		for _, key := range []string{"", "key<1>"} {
			e.KeyID = key
			p, err := Prepare(e, now, func() string { return "server-id" })
			if err != nil {
				tb.Fatalf("seed %d: %v", i, err)
			}
			out = append(out, p.Entry("main", int64(i)).Bytes)
		}
	}
	return out
}

// sameAsEncodingJSON checks that decodeRecord, where it reads b, reads what
// encoding/json does.
func sameAsEncodingJSON(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	var got Record
	if !decodeRecord(b, &got) {
		return false
	}
	var want Record
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("record %s: the fast path read it, encoding/json says %v", b, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("record %s:\ngot  %+v\nwant %+v", b, got, want)
	}
	return true
}

// TestParseEntryReadsStoredRecords checks that every record shape Prepare
// writes takes the fast path, and reads as encoding/json reads it.
func TestParseEntryReadsStoredRecords(t *testing.T) {
	for _, b := range storedSeeds(t) {
		if !sameAsEncodingJSON(t, b) {
			t.Fatalf("record %s: got the slow path, want the fast one", b)
		}
		e, err := ParseEntry(b, Digest{}, nil)
		if err != nil || e.ID == "" || e.Action == "" {
			t.Fatalf("ParseEntry(%s): got %+v, %v", b, e, err)
		}
	}
	// Shapes it leaves to encoding/json, which still reads them.
	for _, b := range []string{
		`{"id":"a","seq":1,"unknown":2}`, `{"id":"a","target":null}`, `{"id":"a","seq":1.5}`, `{"id":"a","time":"yesterday"}`,
	} {
		if decodeRecord([]byte(b), new(Record)) {
			t.Fatalf("record %s: got the fast path, want encoding/json", b)
		}
	}
	if _, err := ParseEntry([]byte(`{"id":"a","seq":1,"unknown":2}`), Digest{}, nil); err != nil {
		t.Fatalf("ParseEntry of an unknown field: %v, want it read as encoding/json does", err)
	}
}

// FuzzParseEntry holds the fast record reader to encoding/json for any
// bytes it reads.
func FuzzParseEntry(f *testing.F) {
	for _, b := range storedSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameAsEncodingJSON(t, b) })
}
