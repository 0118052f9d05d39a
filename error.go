package trail

import (
	"errors"
	"fmt"
)

// Error codes. httpapi maps each to one HTTP status in a single table.
const (
	EINVALID     = "invalid"     // 400: the input breaks the schema
	ETOOLARGE    = "too_large"   // 413: over a size or count limit
	EUNSUPPORTED = "unsupported" // 415: wrong media type
	ENOTFOUND    = "not_found"   // 404
	ECONFLICT    = "conflict"    // 409: an id is taken by other content
	EUNAVAILABLE = "unavailable" // 503: queue full, store down, writes refused
	EINTERNAL    = "internal"    // 500

	EUNAUTHORIZED = "unauthorized" // 401: no valid credential
	EFORBIDDEN    = "forbidden"    // 403: the credential lacks a scope or breaks a binding
	ERATELIMITED  = "rate_limited" // 429: over the key's rate or the failed-auth limit

	// EMETHOD: the path exists, but not with this method (HTTP's 405,
	// answered by httpapi and the viewer).
	EMETHOD = "method_not_allowed"
)

// Error is trail's application error: a code callers can switch on and a
// message that is safe to show to the client.
type Error struct {
	Code    string
	Message string
	// Items holds per-item problems of a rejected batch, by index.
	Items []ItemError
}

// ItemError names one bad event in a batch.
type ItemError struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// Problem is an error answer on the wire: an RFC 9457 problem details
// object with the members trail adds (code, request_id, errors). The HTTP
// API writes it and the client reads it; it is defined once, here, so the
// two cannot drift.
type Problem struct {
	Type      string      `json:"type"`
	Title     string      `json:"title"`
	Status    int         `json:"status"`
	Detail    string      `json:"detail"`
	Instance  string      `json:"instance"`
	Code      string      `json:"code"`
	RequestID string      `json:"request_id"`
	Errors    []ItemError `json:"errors,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("trail: %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other error, and "" for nil.
func ErrorCode(err error) string {
	code, _ := codeMessage(err)
	return code
}

// ErrorMessage returns the client-safe message of err: the message of an
// *Error, and "internal error" for anything else.
func ErrorMessage(err error) string {
	_, msg := codeMessage(err)
	return msg
}

// codeMessage returns what ErrorCode and ErrorMessage return, so that an
// error that is not an *Error is internal for both.
func codeMessage(err error) (code, message string) {
	var e *Error
	switch {
	case err == nil:
		return "", ""
	case errors.As(err, &e):
		return e.Code, e.Message
	}
	return EINTERNAL, "internal error"
}

// Sentinels that adapters return and callers act on.
var (
	// ErrNotFound means no record has the id.
	ErrNotFound = &Error{Code: ENOTFOUND, Message: "no record has this id"}

	// ErrFenced means another writer has appended to this log: the seq the
	// store was asked to write is taken. The writer must stop appending to
	// the log (and may claim another one).
	ErrFenced = errors.New("trail: log was appended by another writer")

	// ErrUnauthorized is the one answer to a missing, malformed, unknown,
	// expired or revoked credential: the same for each, so that a caller
	// learns nothing about which it was.
	ErrUnauthorized = &Error{Code: EUNAUTHORIZED, Message: "a valid API key or viewer token is required (Authorization: Bearer)"}

	// ErrUnavailable means the store cannot be reached now; retry later.
	ErrUnavailable = &Error{Code: EUNAVAILABLE, Message: "the store is unavailable; retry later"}

	// ErrDuplicateID means a store refused an append because one of its ids
	// is stored already or repeated in the batch; nothing of it was stored.
	// Stores wrap it with the id and only report it: whether a request
	// with that id is a replay or a conflict is decided above the store,
	// by the ingester's plan, which looks the ids up again.
	ErrDuplicateID = &Error{Code: ECONFLICT, Message: "an id of the batch is already stored"}
)
