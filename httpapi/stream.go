package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/tail"
)

// DefaultHeartbeat is how often an idle stream sends a comment, so that
// proxies and clients can tell a quiet log from a dead connection.
const DefaultHeartbeat = 15 * time.Second

// handleLogsStream follows the log as Server-Sent Events: each record that
// matches GET /logs's filters, in commit order, as its stored bytes, with
// its cursor as the event id. Last-Event-ID (or ?cursor=) resumes after a
// record with nothing skipped and nothing repeated (package tail). The
// stream ends with an "end" event carrying a problem when the subscriber
// falls too far behind or the server shuts down.
func (s *server) handleLogsStream(w http.ResponseWriter, r *http.Request) {
	if s.tail == nil {
		s.error(w, r, trail.Errorf(trail.ENOTFOUND, "this server has no live tail"))
		return
	}
	q := r.URL.Query()
	if o := q.Get("order"); o != "" && o != "asc" {
		s.error(w, r, trail.Errorf(trail.EINVALID, "parameter \"order\" of a stream must be asc (commit order), not %q", o))
		return
	}
	f, limit, err := parseListQuery(q, true)
	if err == nil {
		err = trail.PrincipalFromContext(r.Context()).NarrowFilter(f)
	}
	if err != nil {
		s.error(w, r, err)
		return
	}
	// A browser's EventSource resends the first URL on reconnecting, so
	// Last-Event-ID takes precedence over ?cursor=.
	after := f.After
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if after, err = trail.ParseCursor(id); err != nil {
			s.error(w, r, trail.Errorf(trail.EINVALID, "header Last-Event-ID is not an event id of this server's stream"))
			return
		}
	}
	st, err := s.tail.Follow(tail.Source{Reader: s.store, Head: s.ingester.Head}, f, after)
	if err != nil {
		s.error(w, r, err)
		return
	}
	defer st.Close()
	s.obs.AddTailSubscribers(1)
	defer s.obs.AddTailSubscribers(-1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // NGINX: pass events on at once
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return // a HEAD has no body, so it would never end
	}
	// The stream opens with where it begins: an id without data sets the
	// client's last event id and dispatches nothing, so that a reconnect
	// before the first record still resumes from there. An empty log has
	// no position yet, and a comment says so.
	if pos := st.Position(); pos != nil {
		w.Write([]byte("id: " + pos.String() + "\n\n"))
	} else {
		w.Write([]byte(": the log is empty\n\n"))
	}
	s.sendEvents(w, r, st, limit)
}

// sendEvents writes the stream's records until the client leaves, limit
// records are out (limit > 0), or the stream ends.
func (s *server) sendEvents(w http.ResponseWriter, r *http.Request, st *tail.Stream, limit int) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{})
	var buf []byte
	sent := 0
	for {
		// A client that takes a minute to accept one write is gone.
		_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
		if err := rc.Flush(); err != nil {
			return
		}
		entries, err := st.Next(ctx, s.heartbeat)
		switch {
		case err != nil && ctx.Err() != nil:
			return // the client left
		case err != nil:
			w.Write(s.endEvent(ctx, r, err))
			rc.Flush()
			return
		case len(entries) == 0:
			buf = append(buf[:0], ": heartbeat\n\n"...)
		default:
			buf = buf[:0]
			for _, e := range entries {
				buf = appendEvent(buf, e)
				if sent++; limit > 0 && sent >= limit {
					w.Write(buf)
					rc.Flush()
					return
				}
			}
		}
		if _, err := w.Write(buf); err != nil {
			return
		}
	}
}

// appendEvent appends e as one SSE event: its cursor as the id, its stored
// bytes as the data. Stored records are compact JSON, without newlines; a
// newline would still arrive intact, split over data lines that the client
// joins with "\n".
func appendEvent(b []byte, e *trail.Entry) []byte {
	b = append(b, "id: "...)
	b = append(b, trail.CursorOf(e).String()...)
	b = append(b, '\n')
	for line := range bytes.SplitSeq(e.Bytes, []byte("\n")) {
		b = append(b, "data: "...)
		b = append(b, line...)
		b = append(b, '\n')
	}
	return append(b, '\n')
}

// endEvent is the last event of a stream that the server ends: "end", with
// the reason as a problem, as an error answer would carry it.
func (s *server) endEvent(ctx context.Context, r *http.Request, err error) []byte {
	code := trail.ErrorCode(err)
	c, ok := codes[code]
	detail := trail.ErrorMessage(err)
	if !ok || code == trail.EINTERNAL {
		s.log.ErrorContext(ctx, "httpapi: stream", "request_id", requestID(ctx), "err", err)
		code, c, detail = trail.EINTERNAL, codes[trail.EINTERNAL], "internal error"
	} else if !errors.Is(err, tail.ErrClosed) {
		s.log.WarnContext(ctx, "httpapi: stream ended", "request_id", requestID(ctx), "err", err)
	}
	b, _ := json.Marshal(trail.Problem{
		Type: problemBase + code, Title: c.title, Status: c.status, Detail: detail,
		Instance: r.URL.EscapedPath(), Code: code, RequestID: requestID(ctx),
	})
	return append(append([]byte("event: end\ndata: "), b...), "\n\n"...)
}
