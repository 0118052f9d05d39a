package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trail-audit/trail"
	"golang.org/x/mod/sumdb/tlog"
)

// maxRecordBytes bounds one record read from the server: far above the
// largest event the server accepts, it only guards against a broken peer.
const maxRecordBytes = 16 << 20

// ErrLeafHash means a record's bytes do not hash to the leaf hash the
// server sent with them.
var ErrLeafHash = errors.New("trail client: record bytes do not match their leaf hash")

// Get returns the stored bytes of the record with id, verbatim, and its
// leaf hash from the ETag. It checks that the bytes hash to it
// (tlog.RecordHash), and returns an error wrapping ErrLeafHash if not; an
// answer without an ETag is an error too, since its bytes cannot be
// checked. A missing record is an *Error with status 404 (errors.Is
// trail.ErrNotFound). The ids "." and ".." are refused before any request:
// escaping cannot keep them from resolving to another path.
func (c *Client) Get(ctx context.Context, id string) ([]byte, tlog.Hash, error) {
	if id == "." || id == ".." {
		return nil, tlog.Hash{}, trail.Errorf(trail.EINVALID, "id %q is not a record id: it is not a path segment of its own", id)
	}
	path := "/logs/" + url.PathEscape(id)
	resp, err := c.do(ctx, &request{method: http.MethodGet, path: path, idempotent: true})
	if err != nil {
		return nil, tlog.Hash{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, tlog.Hash{}, errorFrom(resp)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRecordBytes))
	if err != nil {
		return nil, tlog.Hash{}, fmt.Errorf("trail client: GET %s: %w", path, err)
	}
	leaf := tlog.RecordHash(b)
	// Fail closed: an answer without an ETag (a redirect to another page,
	// a proxy's rewrite) is not a record whose bytes can be trusted.
	etag := resp.Header.Get("ETag")
	if etag == "" {
		return nil, tlog.Hash{}, fmt.Errorf("trail client: GET %s: the answer has no ETag, so its bytes cannot be checked against a leaf hash", path)
	}
	h, err := ParseETag(etag)
	if err != nil {
		return nil, tlog.Hash{}, fmt.Errorf("trail client: GET %s: %w", path, err)
	}
	if h != leaf {
		return b, h, fmt.Errorf("trail client: GET %s: ETag %s, bytes hash to %s: %w", path, h, leaf, ErrLeafHash)
	}
	return b, leaf, nil
}

// ParseETag decodes a leaf hash from an ETag header: the hash in base64
// (standard or URL alphabet, padded or not) or hex, quoted, maybe weak.
func ParseETag(etag string) (tlog.Hash, error) {
	s := strings.TrimPrefix(strings.TrimSpace(etag), "W/")
	s = strings.Trim(s, `"`)
	var h tlog.Hash
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if b, err := dec(s); err == nil && len(b) == tlog.HashSize {
			copy(h[:], b)
			return h, nil
		}
	}
	return h, fmt.Errorf("ETag %q is not a leaf hash", etag)
}

// A Query selects records for List and Stream. Empty fields match
// everything (docs/API.md, GET /logs).
type Query struct {
	Tenant     string
	Actor      string // actor.id
	ActorType  string
	Action     string // exact, or a prefix as "account.*"
	Target     string // target.id
	TargetType string
	Source     string // source.service
	Outcome    string
	Since      time.Time // time >= Since, if not zero
	Until      time.Time // time < Until, if not zero
	Order      string    // "asc" (oldest first) or "desc"; "": the server's default, desc
	Limit      int       // page size; 0: the server's default
	Cursor     string    // resume after the page that returned it
}

// Values returns q as the query parameters of GET /logs.
func (q *Query) Values() url.Values {
	v := url.Values{}
	for _, p := range []struct{ k, v string }{
		{"tenant", q.Tenant}, {"actor", q.Actor}, {"actor_type", q.ActorType}, {"action", q.Action},
		{"target", q.Target}, {"target_type", q.TargetType}, {"source", q.Source},
		{"outcome", q.Outcome}, {"cursor", q.Cursor},
	} {
		if p.v != "" {
			v.Set(p.k, p.v)
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Order != "" {
		v.Set("order", q.Order)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// A Page is one answer of GET /logs.
type Page struct {
	// Events are the records' stored bytes, verbatim.
	Events []json.RawMessage `json:"events"`
	// Next is the cursor of the next page, "" after the last.
	Next string `json:"next"`
}

// Records decodes the page's events.
func (p *Page) Records() ([]trail.Record, error) {
	out := make([]trail.Record, len(p.Events))
	for i, b := range p.Events {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			return nil, fmt.Errorf("trail client: record %d: %w", i, err)
		}
	}
	return out, nil
}

// List returns one page of the records that match q. Set q.Cursor to
// page.Next to get the following page.
func (c *Client) List(ctx context.Context, q Query) (*Page, error) {
	var p struct {
		Events []json.RawMessage `json:"events"`
		Next   *string           `json:"next"`
	}
	if err := c.getJSON(ctx, "/logs", q.Values(), &p); err != nil {
		return nil, err
	}
	page := &Page{Events: p.Events}
	if p.Next != nil {
		page.Next = *p.Next
	}
	return page, nil
}

// Stream returns every record that matches q, streamed by the server as
// NDJSON in one answer (q.Limit and q.Cursor still apply if set). The
// iteration stops at the first error, which it yields.
func (c *Client) Stream(ctx context.Context, q Query) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		resp, err := c.do(ctx, &request{method: http.MethodGet, path: "/logs", query: q.Values(), accept: "application/x-ndjson", idempotent: true})
		if err != nil {
			yield(nil, err)
			return
		}
		if resp.StatusCode != http.StatusOK {
			yield(nil, errorFrom(resp))
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), maxRecordBytes)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			if !yield(bytes.Clone(line), nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield(nil, fmt.Errorf("trail client: GET /logs: stream: %w", err))
		}
	}
}

// Checkpoint returns the latest signed checkpoint of log ("" for the
// server's own log) in signed-note format.
func (c *Client) Checkpoint(ctx context.Context, log string) ([]byte, error) {
	q := url.Values{}
	if log != "" {
		q.Set("log", log)
	}
	return c.getText(ctx, "/checkpoint", q)
}

// VerifierKey returns the server's note verifier key, as
// "name+hash+base64key". Pin it out of band: a key fetched from the same
// server proves nothing about that server.
func (c *Client) VerifierKey(ctx context.Context) (string, error) {
	b, err := c.getText(ctx, "/checkpoint/key", nil)
	return strings.TrimSpace(string(b)), err
}

// A RecordProof is the answer of GET /logs/{id}/proof; check it with
// Verify.
type RecordProof struct{ trail.RecordProof }

// Proof returns the inclusion proof of the record with id in the tree of
// size records (0: the latest checkpoint's tree). Check it with Verify.
func (c *Client) Proof(ctx context.Context, id string, size int64) (*RecordProof, error) {
	q := url.Values{}
	if size > 0 {
		q.Set("size", strconv.FormatInt(size, 10))
	}
	var p RecordProof
	if err := c.getJSON(ctx, "/logs/"+url.PathEscape(id)+"/proof", q, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// A ConsistencyProof is the answer of GET /proof/consistency; check it
// with Verify.
type ConsistencyProof struct{ trail.ConsistencyProof }

// Consistency returns the proof that log's tree of to records extends its
// tree of from records. Check it with Verify.
func (c *Client) Consistency(ctx context.Context, log string, from, to int64) (*ConsistencyProof, error) {
	q := url.Values{}
	if log != "" {
		q.Set("log", log)
	}
	q.Set("from", strconv.FormatInt(from, 10))
	q.Set("to", strconv.FormatInt(to, 10))
	var p ConsistencyProof
	if err := c.getJSON(ctx, "/proof/consistency", q, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Ready returns nil if the server is ready to take writes (GET /readyz),
// else why not.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.get(ctx, &request{method: http.MethodGet, path: "/readyz", once: true})
	return err
}

// Health returns nil if the server process is alive (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	_, err := c.get(ctx, &request{method: http.MethodGet, path: "/healthz", once: true})
	return err
}
