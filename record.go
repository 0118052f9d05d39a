package trail

import (
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
//
// The body is encoded once, by appending bytes, and the digest is taken
// over the event's canonical encoding (encoding/json's Marshal, HTML
// escaping and all) derived from the body's bytes rather than encoded
// again; FuzzPrepare holds both to encoding/json's output.
func Prepare(e *Event, receivedAt time.Time, newID func() string) (*Prepared, error) {
	if len(e.Data) > 0 && !e.dataValid && !json.Valid(e.Data) {
		return nil, Errorf(EINVALID, "event: field \"data\" is not valid JSON")
	}
	p := &Prepared{}
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
	b, tail, ok := encodeBody(make([]byte, 0, bodySize(&p.Body)), &p.Body)
	if ok {
		p.Digest, ok = digest(e, &p.Body, b[tail:])
	}
	if ok && p.RequestID == "" && e.TraceID != "" {
		// The trace id is stored but stays out of the digest, as KeyID
		// does: a redelivery in another trace is a replay.
		p.RequestID = e.TraceID
		b, _, ok = encodeBody(make([]byte, 0, bodySize(&p.Body)), &p.Body)
	}
	if !ok {
		return nil, Errorf(EINVALID, "event: field \"time\" is out of range: %s", t)
	}
	p.body = b
	limit := e.maxRecord
	if limit <= 0 {
		limit = DefaultLimits.MaxEventBytes
	}
	if n := len(p.body) + entryOverhead(p.ID, MaxIDLen); n > limit {
		return nil, Errorf(ETOOLARGE, "the stored record would be about %d bytes; the limit is %d (strings are stored JSON-escaped, and the server adds id, log, seq, received_at and time)", n, limit)
	}
	return p, nil
}

// Size is about how many bytes p's stored record will take: what a queue
// of prepared events holds in memory.
func (p *Prepared) Size() int { return len(p.body) + entryOverhead(p.ID, MaxIDLen) }

// entryOverhead is how many bytes Entry puts before the body's first
// member, for a log name of at most logLen bytes and any seq.
func entryOverhead(id string, logLen int) int {
	return len(`{"id":"","log":"","seq":,`) + len(id) + logLen + len("9223372036854775807") - 1 // body starts with '{'
}

// encodeBody appends b's JSON encoding, as encoding/json writes it
// without HTML escaping, and returns where its tail starts: the members
// from tenant on, which the canonical encoding shares. It reports false
// for a time that encoding/json would refuse.
func encodeBody(dst []byte, b *Body) (_ []byte, tail int, ok bool) {
	dst = append(dst, `{"received_at":`...)
	dst, ok = appendTime(dst, b.ReceivedAt)
	if b.KeyID != "" {
		dst = append(dst, `,"key_id":`...)
		dst = appendString(dst, b.KeyID, false)
	}
	dst = append(dst, `,"time":`...)
	dst, okTime := appendTime(dst, b.Time)
	dst = append(dst, ',')
	tail = len(dst)
	return appendTail(dst, b, false), tail, ok && okTime
}

// bodySize is about the length of b's encoding, for a buffer that need not
// grow: the names, the times and the strings, with room for some escapes.
func bodySize(b *Body) int {
	n := 320 + len(b.KeyID) + len(b.Tenant) + len(b.Action) + len(b.RequestID) + len(b.Data)
	n += len(b.Actor.ID) + len(b.Actor.Type) + len(b.Actor.Name) + len(b.Actor.IP)
	n += len(b.Source.Service) + len(b.Source.Host) + len(b.Source.IP)
	if b.Target != nil {
		n += len(b.Target.ID) + len(b.Target.Type)
	}
	return n
}

// digest returns the idempotency digest of e: the SHA-256 of json.Marshal(e),
// HTML escaping and all, which is what records stored by earlier versions
// are compared by on a replay. The members from tenant on are those of the
// record body's tail, with <, >, &, U+2028 and U+2029 escaped, unless the
// outcome is empty: only the event omits it then.
func digest(e *Event, b *Body, tail []byte) (Digest, bool) {
	var buf [1024]byte // most events fit: no allocation
	h := append(buf[:0], '{')
	if e.ID != "" {
		h = append(h, `"id":`...)
		h = appendString(h, e.ID, true)
		h = append(h, ',')
	}
	ok := true
	if e.Time != nil {
		h = append(h, `"time":`...)
		h, ok = appendTime(h, *e.Time)
		h = append(h, ',')
	}
	if e.Outcome == "" {
		h = appendTail(h, b, true)
	} else {
		h = appendHTMLEscaped(h, tail)
	}
	return sha256.Sum256(h), ok
}

// appendTail appends the members an event and its record share, from
// tenant to data, and the closing brace. canon writes the canonical
// encoding (Event's): HTML escaping, and no empty outcome.
func appendTail(dst []byte, b *Body, canon bool) []byte {
	if b.Tenant != "" {
		dst = append(dst, `"tenant":`...)
		dst = appendString(dst, b.Tenant, canon)
		dst = append(dst, ',')
	}
	dst = append(dst, `"actor":{"id":`...)
	dst = appendString(dst, b.Actor.ID, canon)
	dst = appendMember(dst, `,"type":`, b.Actor.Type, canon)
	dst = appendMember(dst, `,"name":`, b.Actor.Name, canon)
	dst = appendMember(dst, `,"ip":`, b.Actor.IP, canon)
	dst = append(dst, `},"action":`...)
	dst = appendString(dst, b.Action, canon)
	if t := b.Target; t != nil {
		dst = append(dst, `,"target":{`...)
		if t.ID != "" {
			dst = append(dst, `"id":`...)
			dst = appendString(dst, t.ID, canon)
			if t.Type != "" {
				dst = append(dst, ',')
			}
		}
		dst = appendMember(dst, `"type":`, t.Type, canon)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"source":{"service":`...)
	dst = appendString(dst, b.Source.Service, canon)
	dst = appendMember(dst, `,"host":`, b.Source.Host, canon)
	dst = appendMember(dst, `,"ip":`, b.Source.IP, canon)
	dst = append(dst, '}')
	if b.Outcome != "" || !canon { // Body's outcome is not omitempty
		dst = append(dst, `,"outcome":`...)
		dst = appendString(dst, b.Outcome, canon)
	}
	dst = appendMember(dst, `,"request_id":`, b.RequestID, canon)
	if len(b.Data) > 0 {
		dst = append(dst, `,"data":`...)
		dst = appendCompact(dst, b.Data, canon)
	}
	return append(dst, '}')
}

// appendMember appends name and v, the JSON of an omitempty string, unless
// v is empty.
func appendMember(dst []byte, name, v string, html bool) []byte {
	if v == "" {
		return dst
	}
	return appendString(append(dst, name...), v, html)
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

// HashLocation says where the stored hash with the tlog index is kept: in
// the Hashes of the record at seq, at position level.
func HashLocation(index int64) (seq int64, level int) {
	level, n := tlog.SplitStoredHashIndex(index)
	return (n+1)<<uint(level) - 1, level
}
