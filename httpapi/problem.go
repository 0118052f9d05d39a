package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/trail-audit/trail"
)

// Codes the HTTP layer adds to trail's own.
const (
	// codeNotCovered: the record exists, but no signed checkpoint covers it
	// yet, so there is no proof to give; retry after the next checkpoint.
	codeNotCovered = "not_covered"
)

// ProblemBase prefixes each problem's code to make its "type" URI.
const problemBase = "https://trail.dev/problems/"

// codes maps every error code to its HTTP status and problem title. It is
// the only place that decides a status for an error.
var codes = map[string]struct {
	status int
	title  string
}{
	trail.EINVALID:      {http.StatusBadRequest, "Invalid request"},
	trail.ETOOLARGE:     {http.StatusRequestEntityTooLarge, "Request too large"},
	trail.EUNSUPPORTED:  {http.StatusUnsupportedMediaType, "Unsupported media type"},
	trail.ENOTFOUND:     {http.StatusNotFound, "Not found"},
	trail.ECONFLICT:     {http.StatusConflict, "Id already used by other content"},
	trail.EUNAVAILABLE:  {http.StatusServiceUnavailable, "Unavailable; retry later"},
	trail.EINTERNAL:     {http.StatusInternalServerError, "Internal error"},
	trail.EUNAUTHORIZED: {http.StatusUnauthorized, "Unauthorized"},
	trail.EFORBIDDEN:    {http.StatusForbidden, "Forbidden"},
	trail.ERATELIMITED:  {http.StatusTooManyRequests, "Too many requests"},
	trail.EMETHOD:       {http.StatusMethodNotAllowed, "Method not allowed"},
	codeNotCovered:      {http.StatusNotFound, "Not yet covered by a signed checkpoint"},
}

// error answers with err as problem+json. Internal errors are logged in full
// and shown only as "internal error"; the request id ties the two together.
func (s *server) error(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	id := requestID(ctx)
	code := trail.ErrorCode(err)
	c, ok := codes[code]
	if !ok {
		code, c = trail.EINTERNAL, codes[trail.EINTERNAL]
	}
	detail := trail.ErrorMessage(err)
	switch {
	case code == trail.EINTERNAL && errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client went away; nobody reads this answer.
		s.log.DebugContext(ctx, "httpapi: request canceled", "request_id", id, "path", r.URL.Path, "err", err)
		detail = "internal error"
	case code == trail.EINTERNAL:
		s.log.ErrorContext(ctx, "httpapi: internal error", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
		detail = "internal error"
	case code == trail.EUNAVAILABLE:
		s.log.WarnContext(ctx, "httpapi: unavailable", "request_id", id, "path", r.URL.Path, "err", err)
	}
	p := trail.Problem{
		Type:      problemBase + code,
		Title:     c.title,
		Status:    c.status,
		Detail:    detail,
		Instance:  r.URL.EscapedPath(),
		Code:      code,
		RequestID: id,
	}
	var te *trail.Error
	if errors.As(err, &te) {
		p.Errors = te.Items
	}
	h := w.Header()
	if c.status == http.StatusServiceUnavailable || code == codeNotCovered {
		h.Set("Retry-After", s.retryAfter)
	}
	setAuthHeaders(h, code, err)
	// A problem is about this moment (a record may appear later): keep it
	// out of caches, and drop headers a handler set for a success.
	h.Set("Cache-Control", "no-store")
	h.Del("ETag")
	h.Del("Location")
	h.Del("Content-Length")
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p) // a problem always encodes
	h.Set("Content-Type", "application/problem+json")
	w.WriteHeader(c.status)
	w.Write(buf.Bytes())
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own response types reach here, and they always encode.
		panic("httpapi: encode response: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
