package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/trail-audit/trail"
)

// Reads hold records in memory a page at a time, and a page is sized in
// bytes (Memory.Response), not in records: a thousand records can be a
// thousand times larger than a thousand others.

// A pager reads the matches of a filter from the store a page at a time.
// Each page stops at want bytes (Filter.MaxBytes, which bounds it), and
// asks for as many records as want bytes would hold: as large as the limit
// allows until it has seen some, then twice the largest record of the last
// page, so that a store that reads ahead by count reads little more.
type pager struct {
	store  trail.Reader
	f      *trail.Filter
	want   int64 // bytes the next page should hold
	record int64 // bytes assumed per record
	left   int   // records still wanted; < 0 for no cap
	done   bool  // the store has no more matches, or left is 0
}

func (s *server) newPager(f *trail.Filter, left int) *pager {
	return &pager{store: s.store, f: f, want: s.respBytes, record: int64(s.limits.MaxEventBytes) + 1024, left: left}
}

// next returns the next page; it may be empty, and then done is true.
func (p *pager) next(ctx context.Context) ([]*trail.Entry, error) {
	n := int(min(max(p.want/p.record, 1), maxListLimit+1)) // +1: a page's look-ahead
	if p.left >= 0 {
		n = min(n, p.left)
	}
	p.f.Limit, p.f.MaxBytes = n, p.want
	entries, err := p.store.List(ctx, p.f)
	if err != nil {
		return nil, err
	}
	full := entryBytes(entries) >= p.want
	if len(entries) > 0 {
		p.record = 2 * int64(len(entries[0].Bytes))
		for _, e := range entries {
			p.record = max(p.record, 2*int64(len(e.Bytes)))
		}
		p.f.After = trail.CursorOf(entries[len(entries)-1])
	}
	if p.left >= 0 {
		p.left -= len(entries)
	}
	p.done = len(entries) < n && !full || p.left == 0
	return entries, nil
}

// entryBytes is the size of the entries' record bytes.
func entryBytes(entries []*trail.Entry) int64 {
	var n int64
	for _, e := range entries {
		n += int64(len(e.Bytes))
	}
	return n
}

// listPage answers one page of GET /logs as JSON. The page holds up to
// limit records, and stops early once it holds Memory.Response bytes of
// them (always at least one record); next then continues after its last
// record. The page counts against the read budget until it is sent.
func (s *server) listPage(w http.ResponseWriter, r *http.Request, f *trail.Filter, limit int) {
	h := hold{b: &s.reads}
	defer h.release()
	p := s.newPager(f, limit+1) // one more than the page tells whether a next page exists
	b := append(make([]byte, 0, 4<<10), `{"events":[`...)
	var last *trail.Entry
	n, more := 0, false
	for !p.done && !more {
		p.want = max(s.respBytes-int64(len(b)), 1)
		entries, err := p.next(r.Context())
		if err != nil {
			s.error(w, r, err)
			return
		}
		size := entryBytes(entries)
		if !h.take(size) {
			s.error(w, r, readsBusy(&h))
			return
		}
		b = slices.Grow(b, int(size)+len(entries)) // once, not by doubling
		for _, e := range entries {
			if n == limit || (last != nil && int64(len(b)+len(e.Bytes)) > s.respBytes) {
				more = true
				break
			}
			if last != nil {
				b = append(b, ',')
			}
			b = append(b, e.Bytes...) // verbatim: the bytes that were hashed
			last, n = e, n+1
		}
	}
	b = append(b, `],"next":`...)
	if more {
		next := trail.CursorOf(last).String()
		b = strconv.AppendQuote(b, next) // base64url: nothing to escape
		q := r.URL.Query()
		q.Set("cursor", next)
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, q.Encode()))
	} else {
		b = append(b, "null"...)
	}
	b = append(b, "}\n"...)
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// streamLogs writes every record that matches f in format, a page at a
// time, flushing each page. It ends when the store has no more matches (it
// has caught up with the newest) or after limit records if limit > 0. Once
// the first line is out, an error can no longer become a problem, so the
// response is cut short instead: the client sees a truncated stream, never
// a clean end.
func (s *server) streamLogs(w http.ResponseWriter, r *http.Request, f *trail.Filter, limit int, format *streamFormat) {
	ctx := r.Context()
	h := hold{b: &s.reads}
	defer h.release()
	if !h.take(2 * s.respBytes) { // a page, and its formatted copy
		s.error(w, r, readsBusy(&h))
		return
	}
	rc := http.NewResponseController(w)
	// The server sets no write deadline for the next request on this
	// connection unless it has a WriteTimeout, so clear the per-page one.
	defer rc.SetWriteDeadline(time.Time{})
	left := -1
	if limit > 0 {
		left = limit
	}
	p := s.newPager(f, left)
	var buf []byte
	for started := false; ; started = true {
		entries, err := p.next(ctx)
		if err != nil {
			if !started {
				s.error(w, r, err)
				return
			}
			if ctx.Err() == nil {
				s.log.ErrorContext(ctx, "httpapi: stream: list", "request_id", requestID(ctx), "err", err)
			}
			panic(http.ErrAbortHandler)
		}
		buf = buf[:0]
		if !started {
			hd := w.Header()
			hd.Set("Content-Type", format.contentType)
			hd.Set("Cache-Control", "no-cache")
			if format.filename != "" {
				hd.Set("Content-Disposition", `attachment; filename="`+format.filename+`"`)
			}
			w.WriteHeader(http.StatusOK)
			buf = append(buf, format.head...)
		}
		for _, e := range entries {
			buf = format.add(buf, e)
		}
		if !writePage(rc, w, buf) || p.done {
			return
		}
	}
}

// writePage writes and flushes a page; it reports false if the client is
// gone. A slow reader gets a minute per page, whatever the server's
// WriteTimeout, so that long streams are possible and stuck clients are
// not kept forever.
func writePage(rc *http.ResponseController, w http.ResponseWriter, page []byte) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, err := w.Write(page); err != nil {
		return false
	}
	return rc.Flush() == nil
}

// errPageFull stops a Store.Scan once a page holds enough bytes.
var errPageFull = errors.New("httpapi: page full")

// writeExport streams the header line, then the records it names, in seq
// order, one a line. It reads a page of about Memory.Response bytes per
// Store.Scan, so that neither memory nor a read transaction is held for the
// whole export. An error after the header cuts the response short: a
// truncated export, never one that looks whole.
func (s *server) writeExport(w http.ResponseWriter, r *http.Request, hdr trail.ExportHeader) {
	ctx := r.Context()
	log, from, to := hdr.Log, hdr.From, hdr.To
	h := hold{b: &s.reads}
	defer h.release()
	if !h.take(2 * s.respBytes) { // a page, and the one record that overflows it
		s.error(w, r, readsBusy(&h))
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/x-ndjson")
	hd.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) // see streamLogs
	header, _ := json.Marshal(hdr)
	buf := append(header, '\n')
	for lo := from; lo < to || len(buf) > 0; {
		next, err := to, error(nil)
		if lo < to {
			err = trail.ScanRaw(ctx, s.store, log, lo, to, func(seq int64, b []byte) error {
				buf = append(buf, b...)
				buf = append(buf, '\n')
				if int64(len(buf)) >= s.respBytes {
					next = seq + 1
					return errPageFull
				}
				return nil
			})
		}
		if err != nil && !errors.Is(err, errPageFull) {
			if ctx.Err() == nil {
				s.log.ErrorContext(ctx, "httpapi: export: scan", "request_id", requestID(ctx), "log", log, "from", lo, "to", to, "err", err)
			}
			panic(http.ErrAbortHandler)
		}
		lo = next
		_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
		if _, err := w.Write(buf); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		buf = buf[:0]
	}
}
