package trail

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Record is an event as stored: the event plus the fields the server adds.
// Its JSON encoding (see Prepared.Entry) is written once and never
// re-encoded; those bytes are what GET /logs/{id} serves and what is hashed.
// json.Unmarshal of the stored bytes into a Record gives the fields back.
type Record struct {
	ID  string `json:"id"`
	Log string `json:"log"`
	Seq int64  `json:"seq"`
	Body
}

// Body is the record after its log position. It is encoded before the
// writer assigns log and seq.
type Body struct {
	ReceivedAt time.Time       `json:"received_at"`
	KeyID      string          `json:"key_id,omitempty"` // the writing key; absent with auth off
	Time       time.Time       `json:"time"`
	Tenant     string          `json:"tenant,omitempty"`
	Actor      Actor           `json:"actor"`
	Action     string          `json:"action"`
	Target     *Target         `json:"target,omitempty"`
	Source     Source          `json:"source"`
	Outcome    string          `json:"outcome"`
	RequestID  string          `json:"request_id,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// TargetOrZero returns the target, or the zero Target if there is none.
func (b *Body) TargetOrZero() Target {
	if b.Target == nil {
		return Target{}
	}
	return *b.Target
}

// Digest identifies an event's content, for idempotency: the SHA-256 of its
// canonical encoding, without the fields the server adds.
type Digest [sha256.Size]byte

// Prepared is an event made ready for the writer: its id, receive time,
// digest and the encoded body are fixed; only log and seq remain.
type Prepared struct {
	Record
	Digest Digest
	// ClientID is true when the producer chose the id. Only such ids can
	// repeat, so only they need an idempotency lookup.
	ClientID bool
	body     []byte // Body's JSON, from '{'
}

// Prepare fixes an event's id (newID is called when the event has none), its
// receive time, its digest and its encoded body. It does the per-event work
// that does not need the log position, so that request goroutines do it in
// parallel rather than the single writer.
//
// The record holds strings as sent: <, > and & are not escaped, since the
// bytes are served as application/json and never as HTML. A record that
// would still outgrow the event limit (Limits.MaxEventBytes, as given to
// ParseEvent) is refused with ETOOLARGE.
func Prepare(e *Event, receivedAt time.Time, newID func() string) (*Prepared, error) {
	// The digest keeps json.Marshal's HTML-escaping encoding: it is what
	// records stored by earlier versions are compared by on a replay.
	canon, err := json.Marshal(e)
	if err != nil {
		return nil, Errorf(EINVALID, "event: %v", err)
	}
	p := &Prepared{Digest: sha256.Sum256(canon)}
	p.ID, p.ClientID = e.ID, e.ID != ""
	if p.ID == "" {
		p.ID = newID()
	}
	receivedAt = receivedAt.UTC()
	t := receivedAt
	if e.Time != nil {
		t = *e.Time
	}
	p.Body = Body{
		ReceivedAt: receivedAt, KeyID: e.KeyID, Time: t, Tenant: e.Tenant, Actor: e.Actor, Action: e.Action,
		Target: e.Target, Source: e.Source, Outcome: e.Outcome, RequestID: e.RequestID, Data: e.Data,
	}
	if p.body, err = marshalNoEscape(&p.Body); err != nil {
		return nil, Errorf(EINVALID, "event: %v", err)
	}
	limit := e.maxRecord
	if limit <= 0 {
		limit = DefaultLimits.MaxEventBytes
	}
	if n := len(p.body) + entryOverhead(p.ID, MaxIDLen); n > limit {
		return nil, Errorf(ETOOLARGE, "the stored record would be about %d bytes; the limit is %d (strings are stored JSON-escaped, and the server adds id, log, seq, received_at and time)", n, limit)
	}
	return p, nil
}

// entryOverhead is how many bytes Entry puts before the body's first
// member, for a log name of at most logLen bytes and any seq.
func entryOverhead(id string, logLen int) int {
	return len(`{"id":"","log":"","seq":,`) + len(id) + logLen + len("9223372036854775807") - 1 // body starts with '{'
}

// marshalNoEscape is json.Marshal without the HTML escaping of <, > and &,
// which made records up to six times their event.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Entry places p at seq in log and returns the entry to store: the record
// bytes and their leaf hash. The caller fills Hashes[1:] from the tree.
func (p *Prepared) Entry(log string, seq int64) *Entry {
	b := make([]byte, 0, len(p.body)+len(p.ID)+len(log)+40)
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, p.ID) // ids and log names are plain ASCII
	b = append(b, `,"log":`...)
	b = strconv.AppendQuote(b, log)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ',')
	b = append(b, p.body[1:]...)
	e := &Entry{Record: p.Record, Bytes: b, Digest: p.Digest, Hashes: []tlog.Hash{tlog.RecordHash(b)}}
	e.Log, e.Seq = log, seq
	return e
}

// Entry is a record as a Store holds it: the parsed fields (for its index
// columns), the verbatim bytes, the idempotency digest and the Merkle hashes
// that appending it created (tlog.StoredHashes; Hashes[0] is the leaf hash).
type Entry struct {
	Record
	Bytes  []byte
	Digest Digest
	Hashes []tlog.Hash
}

// LeafHash is the RFC 6962 leaf hash of the record bytes.
func (e *Entry) LeafHash() tlog.Hash { return e.Hashes[0] }

// Receipt returns the producer's receipt for e.
func (e *Entry) Receipt() Receipt {
	return Receipt{ID: e.ID, Log: e.Log, Seq: e.Seq, ReceivedAt: e.ReceivedAt, LeafHash: e.Hashes[0]}
}

// ParseEntry rebuilds an entry's parsed fields from its stored bytes.
func ParseEntry(b []byte, digest Digest, hashes []tlog.Hash) (*Entry, error) {
	e := &Entry{Bytes: b, Digest: digest, Hashes: hashes}
	if err := json.Unmarshal(b, &e.Record); err != nil {
		return nil, err
	}
	return e, nil
}

// HashLocation says where the stored hash with the tlog index is kept: in
// the Hashes of the record at seq, at position level.
func HashLocation(index int64) (seq int64, level int) {
	level, n := tlog.SplitStoredHashIndex(index)
	return (n+1)<<uint(level) - 1, level
}
