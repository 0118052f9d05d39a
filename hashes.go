package trail

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// AppendHashes appends hs to b, tlog.HashSize bytes each, which is how
// stores keep a record's stored hashes, and returns the extended slice.
// Appending lets a store fill one buffer for a whole batch.
func AppendHashes(b []byte, hs []tlog.Hash) []byte {
	for i := range hs {
		b = append(b, hs[i][:]...)
	}
	return b
}

// EncodeHashes returns hs as bytes, tlog.HashSize bytes each.
func EncodeHashes(hs []tlog.Hash) []byte {
	return AppendHashes(make([]byte, 0, len(hs)*tlog.HashSize), hs)
}

// DecodeHashes reverses EncodeHashes. A record has at least one stored hash,
// so b must be a positive multiple of tlog.HashSize bytes. If it is not,
// DecodeHashes returns an error together with the whole hashes b holds, for
// callers that report a damaged record rather than fail on it.
func DecodeHashes(b []byte) ([]tlog.Hash, error) {
	var err error
	if len(b) == 0 || len(b)%tlog.HashSize != 0 {
		err = fmt.Errorf("stored hashes are %d bytes, not a positive multiple of %d", len(b), tlog.HashSize)
	}
	if len(b) < tlog.HashSize {
		return nil, err
	}
	hs := make([]tlog.Hash, len(b)/tlog.HashSize)
	for i := range hs {
		copy(hs[i][:], b[i*tlog.HashSize:])
	}
	return hs, err
}
