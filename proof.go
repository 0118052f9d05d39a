package trail

import "golang.org/x/mod/sumdb/tlog"

// The wire shapes of proofs and exports. The HTTP API writes them and the
// client reads them; they are defined once, here, so the two cannot drift.

// RecordProof is the answer of GET /logs/{id}/proof: the record's place,
// its leaf hash, and an inclusion proof in the tree of Size records, whose
// signed checkpoint comes with it.
type RecordProof struct {
	ID         string           `json:"id"`
	Log        string           `json:"log"`
	Seq        int64            `json:"seq"`
	Size       int64            `json:"size"`
	LeafHash   tlog.Hash        `json:"leaf_hash"`
	Proof      tlog.RecordProof `json:"proof"`
	Checkpoint string           `json:"checkpoint"` // the signed note of the tree of Size
}

// ConsistencyProof is the answer of GET /proof/consistency: it proves that
// the tree of To records extends the tree of From records.
type ConsistencyProof struct {
	Log   string         `json:"log"`
	From  int64          `json:"from"`
	To    int64          `json:"to"`
	Proof tlog.TreeProof `json:"proof"`
}

// ExportHeader is the first line of an export (GET /export, trail export):
// which log, which seq range, and the signed checkpoint the records are
// checked against.
type ExportHeader struct {
	Format     int    `json:"trail_export"` // 1
	Log        string `json:"log"`
	From       int64  `json:"from"`
	To         int64  `json:"to"`
	Checkpoint string `json:"checkpoint"` // the latest signed note, "" if signing is off
}
