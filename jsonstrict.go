package trail

import (
	"bytes"
	"errors"
	"io"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// strictJSON is how events are decoded. A proxy, a WAF or an auditor's
// own parser must see the event trail indexes, so nothing is left to a
// parser's taste: a key given twice anywhere (data included), a field name
// in another case, a lone UTF-16 surrogate and a member the schema lacks
// are all refused. Most of these are the defaults of the v2 JSON API; they
// are spelled out so that an upstream change of default cannot loosen them.
var strictJSON = jsonv2.JoinOptions(
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
	jsonv2.MatchCaseInsensitiveNames(false),
	jsonv2.RejectUnknownMembers(true),
)

// splitJSON reads the items of a batch without judging them, so that each
// item's problem is reported by its index rather than for the whole batch.
var splitJSON = jsonv2.JoinOptions(
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
)

// splitArray returns the items of the JSON array b as subslices of b.
func splitArray(b []byte) ([][]byte, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(b), splitJSON)
	if dec.PeekKind() != '[' {
		if _, err := dec.ReadToken(); err != nil {
			return nil, jsonError(err)
		}
		return nil, Errorf(EINVALID, "request body must be a JSON array of events")
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, jsonError(err)
	}
	var items [][]byte
	for dec.PeekKind() != ']' {
		v, err := dec.ReadValue()
		if err != nil {
			return nil, jsonError(err)
		}
		end := int(dec.InputOffset())
		items = append(items, b[end-len(v):end])
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, Errorf(EINVALID, "unexpected data after the array of events")
	}
	return items, nil
}

// jsonError turns a JSON decoding error into an *Error that names the key
// and its path.
func jsonError(err error) *Error {
	var se *jsontext.SyntacticError
	var me *jsonv2.SemanticError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return Errorf(EINVALID, "malformed JSON: unexpected end of input")
	case errors.As(err, &se):
		return syntaxError(se)
	case errors.As(err, &me):
		field := pointerPath(me.JSONPointer)
		if errors.Is(me.Err, jsonv2.ErrUnknownName) {
			return Errorf(EINVALID, "unknown field %q; field names are exact and lowercase; put event-specific fields in \"data\"", field)
		}
		if field == "" {
			field = "event"
		}
		want := "a string"
		if me.GoType != nil {
			want = goKind(me.GoType.Kind().String())
		}
		return Errorf(EINVALID, "field %q must be %s, not JSON %s", field, want, jsonKindName(me.JSONKind))
	}
	return Errorf(EINVALID, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// syntaxError explains a grammar error of the strict reading.
func syntaxError(se *jsontext.SyntacticError) *Error {
	switch {
	case errors.Is(se.Err, io.ErrUnexpectedEOF), errors.Is(se.Err, io.EOF):
		return Errorf(EINVALID, "malformed JSON: unexpected end of input")
	case errors.Is(se.Err, jsontext.ErrDuplicateName):
		return Errorf(EINVALID, "duplicate key %q at %s; send each key once", se.JSONPointer.LastToken(), pointerOrRoot(se.JSONPointer))
	case strings.Contains(se.Err.Error(), "surrogate pair"):
		return Errorf(EINVALID, "string at %s holds a lone surrogate: a \\ud800-\\udfff escape without its pair", pointerOrRoot(se.JSONPointer))
	case strings.Contains(se.Err.Error(), "after top-level value"):
		return Errorf(EINVALID, "unexpected data after the event object")
	case strings.Contains(se.Err.Error(), "invalid UTF-8"):
		return Errorf(EINVALID, "string at %s is not valid UTF-8", pointerOrRoot(se.JSONPointer))
	}
	return Errorf(EINVALID, "malformed JSON at byte %d: %s", se.ByteOffset, se.Err)
}

func pointerOrRoot(p jsontext.Pointer) string {
	if p == "" {
		return "the top level"
	}
	return string(p)
}

// pointerPath turns a JSON pointer into the dotted name the docs use, as
// "actor.id".
func pointerPath(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	return strings.Join(parts, ".")
}

func goKind(k string) string {
	switch k {
	case "ptr", "struct":
		return "an object"
	case "string":
		return "a string"
	case "slice":
		return "a JSON object"
	}
	return k
}

func jsonKindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "bool"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "value"
}
