package trail_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

func TestHashesRoundTrip(t *testing.T) {
	h1, h2 := tlog.RecordHash([]byte("a")), tlog.RecordHash([]byte("b"))
	for _, tt := range []struct {
		name string
		hs   []tlog.Hash
	}{
		{"one", []tlog.Hash{h1}},
		{"two", []tlog.Hash{h1, h2}},
		{"repeated", []tlog.Hash{h2, h2, h1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := trail.EncodeHashes(tt.hs)
			if got, want := len(b), len(tt.hs)*tlog.HashSize; got != want {
				t.Fatalf("EncodeHashes: got %d bytes, want %d", got, want)
			}
			got, err := trail.DecodeHashes(b)
			if err != nil || !slices.Equal(got, tt.hs) {
				t.Fatalf("DecodeHashes(EncodeHashes(hs)): got %x, %v; want %x, nil", got, err, tt.hs)
			}
			prefix := slices.Clip([]byte("prefix"))
			if got, want := trail.AppendHashes(prefix, tt.hs), append(prefix, b...); !bytes.Equal(got, want) {
				t.Fatalf("AppendHashes: got %x, want %x", got, want)
			}
		})
	}
}

func TestDecodeHashes(t *testing.T) {
	h1, h2 := tlog.RecordHash([]byte("a")), tlog.RecordHash([]byte("b"))
	two := append(h1[:], h2[:]...)
	for _, tt := range []struct {
		name    string
		in      []byte
		want    []tlog.Hash
		wantErr bool
	}{
		{"nil", nil, nil, true},
		{"empty", []byte{}, nil, true},
		{"short", h1[:tlog.HashSize-1], nil, true},
		{"one", h1[:], []tlog.Hash{h1}, false},
		{"two", two, []tlog.Hash{h1, h2}, false},
		{"trailing byte", append(two[:len(two):len(two)], 0), []tlog.Hash{h1, h2}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := trail.DecodeHashes(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error: got %v, want error %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("hashes: got %x, want %x", got, tt.want)
			}
		})
	}
}
