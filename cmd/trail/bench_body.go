package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/trail-audit/trail/client"
	"golang.org/x/mod/sumdb/tlog"
)

// The load generator shares the machine with the server it measures, so
// every CPU-µs it spends per event is one the server does not get. It
// builds request bodies by appending bytes into a buffer it reuses, and
// scans the receipts for ids and leaf hashes rather than decoding them:
// no maps, no reflection, a few allocations per event.

// encode appends the request body of n events numbered from first to body,
// and their ids to ids ("" where the server is to choose). One event is
// sent as an object, more as an array.
func (l *benchLoad) encode(body []byte, ids []string, rng *rand.Rand, first, n int64) ([]byte, []string) {
	if n > 1 {
		body = append(body, '[')
	}
	for i := range n {
		if i > 0 {
			body = append(body, ',')
		}
		id := ""
		if l.cfg.ids {
			id = client.NewID()
		}
		ids = append(ids, id)
		body = l.appendEvent(body, rng, id, first+i)
	}
	if n > 1 {
		body = append(body, ']')
	}
	return body, ids
}

// appendEvent appends event number n. Only tenant and action come from
// flags (l.tenant and l.action hold them JSON-quoted); the rest is plain
// ASCII.
func (l *benchLoad) appendEvent(b []byte, rng *rand.Rand, id string, n int64) []byte {
	b = append(b, '{')
	if id != "" {
		b = append(b, `"id":"`...)
		b = append(b, id...)
		b = append(b, `",`...)
	}
	user := rng.IntN(10000)
	b = append(b, `"tenant":`...)
	b = append(b, l.tenant...)
	b = append(b, `,"actor":{"id":"user-`...)
	b = strconv.AppendInt(b, int64(user), 10)
	b = append(b, `","type":"user","name":"Bench User `...)
	b = strconv.AppendInt(b, int64(user), 10)
	b = append(b, `","ip":"10.1.`...)
	b = strconv.AppendInt(b, int64(user/256%256), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(user%256), 10)
	b = append(b, `"},"action":`...)
	b = append(b, l.action...)
	b = append(b, `,"target":{"id":"acct-`...)
	b = strconv.AppendInt(b, int64(rng.IntN(100000)), 10)
	b = append(b, `","type":"account"},"source":{"service":"trail-bench","host":"bench-host-1","ip":"10.0.0.2"},"outcome":"success","request_id":"req-`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `","data":{"n":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"pad":"`...)
	b = append(b, l.pad...)
	return append(b, `"}}`...)
}

var (
	receiptID   = []byte(`"id":"`)
	receiptLeaf = []byte(`"leaf_hash":"`)
)

// scanReceipts appends an ack for each receipt in answer, the body of a
// 200 or 201 to POST /logs: one receipt or {"receipts": [...]}. It reads
// trail's own encoding (docs/API.md): each receipt's "id" before its
// "leaf_hash", both strings without escapes (ids and base64 need none).
// ids are the ids sent ("" where the server chose); each receipt must
// carry its event's, and the ack then shares the sent string.
func scanReceipts(acks []ack, answer []byte, ids []string) ([]ack, error) {
	for i, want := range ids {
		id, rest, err := scanString(answer, receiptID)
		if err != nil {
			return acks, fmt.Errorf("receipt %d of %d: %w", i, len(ids), err)
		}
		leaf, rest, err := scanString(rest, receiptLeaf)
		if err != nil {
			return acks, fmt.Errorf("receipt %d of %d: %w", i, len(ids), err)
		}
		a := ack{id: want}
		if want == "" {
			a.id = string(id)
		} else if string(id) != want {
			return acks, fmt.Errorf("receipt %d is for id %q, want %q", i, id, want)
		}
		var h [tlog.HashSize + 1]byte // DecodedLen of 44 bytes is 33
		if n, err := base64.StdEncoding.Decode(h[:], leaf); err != nil || n != tlog.HashSize {
			return acks, fmt.Errorf("receipt %d: leaf_hash %q is not a base64 SHA-256 hash", i, leaf)
		}
		copy(a.leaf[:], h[:tlog.HashSize])
		acks = append(acks, a)
		answer = rest
	}
	if bytes.Contains(answer, receiptID) {
		return acks, fmt.Errorf("more receipts than the %d events sent", len(ids))
	}
	return acks, nil
}

// scanString finds name (`"member":"`) in b and returns the string value
// after it and the rest of b.
func scanString(b, name []byte) (value, rest []byte, err error) {
	i := bytes.Index(b, name)
	if i < 0 {
		return nil, nil, fmt.Errorf("no %s member", name[:len(name)-2])
	}
	b = b[i+len(name):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return nil, nil, errors.New("unterminated string")
	}
	return b[:j], b[j+1:], nil
}
