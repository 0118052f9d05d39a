// Package trail holds the domain of the trail audit log: events as producers
// send them, records as they are stored, receipts, filters and the error type
// shared by every adapter. It does no I/O.
//
// Adapters live in their own packages (sqlite, mongo, httpapi, ingest, merkle)
// and import this one; they never import each other. Only cmd/trail wires them.
package trail

import (
	"encoding/base64"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Receipt is what a producer gets back for each stored event. It names the
// record's place in its log and its Merkle leaf hash.
type Receipt struct {
	ID         string    `json:"id"`
	Log        string    `json:"log"`
	Seq        int64     `json:"seq"`
	ReceivedAt time.Time `json:"received_at"`
	LeafHash   tlog.Hash `json:"leaf_hash"`
}

// AppendJSON appends r's JSON encoding, as encoding/json writes it (without
// HTML escaping), for the answers to POST /logs: per event, by appending
// bytes rather than through reflection.
func (r *Receipt) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, r.ID, false)
	dst = append(dst, `,"log":`...)
	dst = appendString(dst, r.Log, false)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, r.Seq, 10)
	dst = append(dst, `,"received_at":`...)
	dst, _ = appendTime(dst, r.ReceivedAt) // a receive time is always encodable
	dst = append(dst, `,"leaf_hash":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, r.LeafHash[:])
	return append(dst, `"}`...)
}

// Head is the writable end of a log: its name and how many records it holds.
type Head struct {
	Log  string
	Size int64
}

// Limits bounds what one request and one event may carry.
type Limits struct {
	MaxEventBytes   int   // one event's encoded size
	MaxRequestBytes int64 // one request body
	MaxBatchEvents  int   // events in one request

	// DefaultSource is the source.service of an event that names none: the
	// binding of a source-bound key, so that such a producer may leave it
	// out. "" keeps source.service required.
	DefaultSource string
}

// OrDefaults returns l with every unset (zero or negative) size limit
// taken from DefaultLimits. Every transport applies it to its limits.
func (l Limits) OrDefaults() Limits {
	d := DefaultLimits
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = d.MaxEventBytes
	}
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = d.MaxRequestBytes
	}
	if l.MaxBatchEvents <= 0 {
		l.MaxBatchEvents = d.MaxBatchEvents
	}
	return l
}

// DefaultLimits are the limits of DESIGN.md §2.
var DefaultLimits = Limits{
	MaxEventBytes:   64 << 10,
	MaxRequestBytes: 10 << 20,
	MaxBatchEvents:  10000,
}
