package trail

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the body of a C2SP tlog-checkpoint: log Origin has Size
// records and its RFC 6962 tree root is Hash. Signed, it is a note
// (golang.org/x/mod/sumdb/note); see package merkle.
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
}

// Marshal returns the checkpoint body: three lines, each ending in '\n'.
func (c Checkpoint) Marshal() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// ParseCheckpoint parses a checkpoint body (the text of a note, before its
// signatures). Extension lines after the root are allowed and ignored.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	var c Checkpoint
	lines := bytes.SplitN(text, []byte("\n"), 4)
	if len(lines) < 4 || len(lines[0]) == 0 {
		return c, fmt.Errorf("checkpoint: want origin, size and root lines")
	}
	c.Origin = string(lines[0])
	n, err := strconv.ParseInt(string(lines[1]), 10, 64)
	if err != nil || n < 0 || string(lines[1]) != strconv.FormatInt(n, 10) {
		return c, fmt.Errorf("checkpoint: bad size %q", lines[1])
	}
	c.Size = n
	h, err := base64.StdEncoding.DecodeString(string(lines[2]))
	if err != nil || len(h) != tlog.HashSize {
		return c, fmt.Errorf("checkpoint: bad root hash %q", lines[2])
	}
	copy(c.Hash[:], h)
	return c, nil
}

// ParseNote parses the checkpoint in a signed note: the text before the
// blank line that starts the signatures. It does not check a signature
// (merkle.Open does); it is for a server reading back notes it stored.
func ParseNote(note []byte) (Checkpoint, error) {
	i := bytes.Index(note, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, fmt.Errorf("checkpoint: the note has no signature block")
	}
	return ParseCheckpoint(note[:i+1])
}
