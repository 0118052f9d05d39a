package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/trail-audit/trail"
)

// A FollowEvent is one record of a followed log: its stored bytes, verbatim,
// and its event id, a cursor that resumes just after it (Query.Cursor).
type FollowEvent struct {
	ID     string
	Record json.RawMessage
}

// A Follower is an open GET /logs/stream: the records that match a query,
// in commit order, as the server commits them. It reconnects by itself
// after a dropped connection, a server restart or a cut-off (the server
// ends a subscriber that falls too far behind), resuming after the last id
// it saw, so that nothing is skipped or repeated. It is used by one
// goroutine.
type Follower struct {
	c      *Client
	ctx    context.Context
	q      Query
	lastID string // resume after this: the last record's id, or the stream's first
	body   io.ReadCloser
	rd     *bufio.Reader
	fails  int // reconnections since the last record
}

// Follow opens the stream of records that match q (GET /logs/stream):
// after q.Cursor if it is set (a cursor, or a FollowEvent's ID), or from
// the next commit. It returns once the server has subscribed, so that every
// record committed after Follow returns will be delivered. q.Order must be
// "" or "asc", and q.Limit is ignored. An error the server answers before
// the stream starts (a bad filter, a missing scope) is returned as *Error.
func (c *Client) Follow(ctx context.Context, q Query) (*Follower, error) {
	if q.Order != "" && q.Order != "asc" {
		return nil, trail.Errorf(trail.EINVALID, "a followed log is in commit order; Order must be \"\" or \"asc\", not %q", q.Order)
	}
	q.Order, q.Limit = "", 0
	f := &Follower{c: c, ctx: ctx, q: q, lastID: q.Cursor}
	f.q.Cursor = ""
	if err := f.connect(); err != nil {
		return nil, err
	}
	return f, nil
}

// connect opens the stream after lastID.
func (f *Follower) connect() error {
	r := &request{method: http.MethodGet, path: "/logs/stream", query: f.q.Values(), accept: "text/event-stream", idempotent: true}
	if f.lastID != "" {
		r.header = http.Header{"Last-Event-ID": {f.lastID}}
	}
	resp, err := f.c.do(f.ctx, r)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errorFrom(resp)
	}
	f.body, f.rd = resp.Body, bufio.NewReaderSize(resp.Body, 64<<10)
	return f.readStart()
}

// readStart reads the block a stream opens with: the id of where it
// begins, or a comment on an empty log.
func (f *Follower) readStart() error {
	for {
		line, err := f.rd.ReadString('\n')
		if err != nil {
			f.Close()
			return fmt.Errorf("trail client: GET /logs/stream: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return nil
		}
		if v, ok := strings.CutPrefix(line, "id:"); ok {
			f.lastID = strings.TrimPrefix(v, " ")
		}
	}
}

// Close closes the stream.
func (f *Follower) Close() error {
	if f.body != nil {
		return f.body.Close()
	}
	return nil
}

// Position returns the id after which a new Follow would resume: the last
// record's, or where the stream began (q.Cursor, or the log's end when
// Follow returned). It is "" only for a stream that began on an empty log
// and has delivered nothing.
func (f *Follower) Position() string { return f.lastID }

// Next waits for the next record. It reconnects, with backoff, after a
// transport error or when the server ends the stream, and returns an error
// only when the context ends or the server refuses the stream (a 4xx,
// such as a revoked key).
func (f *Follower) Next() (FollowEvent, error) {
	for {
		ev, err := f.read()
		if err == nil {
			f.fails = 0
			return ev, nil
		}
		f.Close()
		f.body = nil
		if f.ctx.Err() != nil {
			return FollowEvent{}, fmt.Errorf("trail client: follow: %w", f.ctx.Err())
		}
		for {
			if err := sleep(f.ctx, f.c.backoff(min(f.fails, 10), 0)); err != nil {
				return FollowEvent{}, fmt.Errorf("trail client: follow: %w", err)
			}
			f.fails++
			err := f.connect()
			if err == nil {
				break
			}
			var e *Error
			if errors.As(err, &e) && e.Status < 500 && e.Status != http.StatusTooManyRequests {
				return FollowEvent{}, err
			}
		}
	}
}

// errEnded is read's error for an "end" event: the server ended the
// stream (a cut-off, a shutdown) and a reconnect resumes it.
var errEnded = errors.New("trail client: the server ended the stream")

// read parses events until a record, following the SSE rules trail's
// server uses: "id", "event" and "data" fields, comments, blank lines
// ending an event, and an event without data only setting the last id.
func (f *Follower) read() (FollowEvent, error) {
	if f.body == nil {
		return FollowEvent{}, io.ErrUnexpectedEOF
	}
	var id, name string
	var data []byte
	hasData := false
	for {
		line, err := f.rd.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A record longer than the buffer: gather the rest of the line.
			rest, rerr := f.rd.ReadBytes('\n')
			line, err = append(bytes.Clone(line), rest...), rerr
		}
		if err != nil {
			return FollowEvent{}, err
		}
		line = bytes.TrimRight(line, "\r\n")
		field, value, _ := strings.Cut(string(line), ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case len(line) == 0 && name == "end":
			return FollowEvent{}, fmt.Errorf("%w: %s", errEnded, data)
		case len(line) == 0:
			// The id counts once its event is whole, so that a connection
			// cut mid-event resumes before it.
			if id != "" {
				f.lastID = id
			}
			if hasData {
				return FollowEvent{ID: id, Record: data}, nil
			}
			id, name = "", ""
		case line[0] == ':': // a heartbeat
		case field == "id":
			id = value
		case field == "event":
			name = value
		case field == "data":
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, value...), true
		}
	}
}
