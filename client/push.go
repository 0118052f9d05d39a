package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/trail-audit/trail"
)

// Push stores events in one request: atomically, all of them or none. It
// gives each event without an ID one (setting e.ID) before the first
// attempt, so that retries are replays the server recognises. It returns
// the receipts in order; Created is false when every event was already
// stored (a replay).
//
// Push retries 503 and 429 (honouring Retry-After), connection failures and
// gateway errors, with capped exponential backoff, until the retry budget
// or ctx runs out. Errors from the server are *Error.
func (c *Client) Push(ctx context.Context, events ...*trail.Event) (*trail.Result, error) {
	if len(events) == 0 {
		return nil, errors.New("trail client: push: no events")
	}
	ids := make([]string, len(events))
	for i, e := range events {
		if e.ID == "" && c.newID != nil {
			e.ID = c.newID()
		}
		ids[i] = e.ID
	}
	var body []byte
	var err error
	if len(events) == 1 {
		body, err = json.Marshal(events[0])
	} else {
		body, err = json.Marshal(events)
	}
	if err != nil {
		return nil, fmt.Errorf("trail client: push: %w", err)
	}
	return c.post(ctx, body, ids)
}

// PushRaw is Push for events already encoded as JSON objects, in the event
// schema or the legacy shape. An object without an "id" member gets one,
// inserted as its first member; the rest of its bytes are sent unchanged.
func (c *Client) PushRaw(ctx context.Context, events ...json.RawMessage) (*trail.Result, error) {
	if len(events) == 0 {
		return nil, errors.New("trail client: push: no events")
	}
	ids := make([]string, len(events))
	out := make([]json.RawMessage, len(events))
	for i, raw := range events {
		out[i], ids[i] = c.withID(raw)
	}
	var body []byte
	if len(out) == 1 && len(out[0]) > 0 && out[0][0] == '{' {
		body = out[0]
	} else {
		// Anything but one object goes as an array, so that the server
		// judges each item as an event (and a stray array is not taken
		// for a batch of several).
		body = append(body, '[')
		for i, raw := range out {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, raw...)
		}
		body = append(body, ']')
	}
	return c.post(ctx, body, ids)
}

// PushEncoded sends a request body the caller encoded: one event object or
// a JSON array of them. It is for load generators, which must spend little
// CPU per event: it neither encodes events nor decodes the receipts, but
// appends the answer's body (the receipts, as docs/API.md gives them) to
// dst and returns it. idempotent says that every event has an id, so that
// the request may be retried after a dropped connection or a gateway
// error. created is false when every event was a replay.
func (c *Client) PushEncoded(ctx context.Context, dst, body []byte, idempotent bool) (answer []byte, created bool, err error) {
	resp, err := c.do(ctx, &request{
		method: http.MethodPost, path: "/logs", body: body, contentType: "application/json",
		accept: "application/json", idempotent: idempotent,
	})
	if err != nil {
		return dst, false, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return dst, false, errorFrom(resp)
	}
	defer resp.Body.Close()
	buf := bytes.NewBuffer(dst)
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return dst, false, fmt.Errorf("trail client: POST /logs: read receipts: %w", err)
	}
	return buf.Bytes(), resp.StatusCode == http.StatusCreated, nil
}

// withID returns raw with an "id" member, adding one if raw is an object
// without it, and the id ("" if it has none). Malformed input is left for
// the server to reject with a precise message.
func (c *Client) withID(raw json.RawMessage) (json.RawMessage, string) {
	raw = bytes.TrimSpace(raw)
	var m map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return raw, ""
	}
	if v, ok := m["id"]; ok {
		var id string
		json.Unmarshal(v, &id)
		return raw, id
	}
	if c.newID == nil {
		return raw, ""
	}
	id := c.newID()
	b := make([]byte, 0, len(raw)+64)
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, id)
	rest := bytes.TrimSpace(raw[1:])
	if rest[0] != '}' {
		b = append(b, ',')
	}
	return append(b, rest...), id
}

// pushAnswer decodes both answer shapes: a single receipt, or
// {"receipts": [...]} for a batch.
type pushAnswer struct {
	Receipts []trail.Receipt `json:"receipts"`
	trail.Receipt
}

// post sends an encoded event or batch whose events have the ids ("" where
// the server is to choose one) and checks the receipts against them.
func (c *Client) post(ctx context.Context, body []byte, ids []string) (*trail.Result, error) {
	idempotent := true
	for _, id := range ids {
		idempotent = idempotent && id != ""
	}
	resp, err := c.do(ctx, &request{
		method: http.MethodPost, path: "/logs", body: body, contentType: "application/json",
		accept: "application/json", idempotent: idempotent,
	})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return nil, errorFrom(resp)
	}
	defer resp.Body.Close()
	var a pushAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, fmt.Errorf("trail client: POST /logs: decode receipts: %w", err)
	}
	if a.Receipts == nil && a.ID != "" {
		a.Receipts = []trail.Receipt{a.Receipt}
	}
	if len(a.Receipts) != len(ids) {
		return nil, fmt.Errorf("trail client: POST /logs: got %d receipts for %d events", len(a.Receipts), len(ids))
	}
	for i, r := range a.Receipts {
		if ids[i] != "" && r.ID != ids[i] {
			return nil, fmt.Errorf("trail client: POST /logs: receipt %d is for id %q, want %q", i, r.ID, ids[i])
		}
	}
	return &trail.Result{Receipts: a.Receipts, Created: resp.StatusCode == http.StatusCreated}, nil
}
