package trail

import (
	"bytes"
	"time"
	"unicode/utf8"
)

// The functions in this file build JSON by appending bytes, as
// encoding/json's Marshal would write it: the record bytes and the
// idempotency digest's canonical encoding were defined by encoding/json,
// and records and digests stored by earlier versions must keep matching.
// FuzzPrepare holds them to encoding/json's output.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does:
// '"', '\\' and control characters always, U+2028 and U+2029 always, and
// <, > and & only with html; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string, html bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!html || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Both are valid in JSON strings but end lines in JavaScript.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendCompact appends the valid JSON value src without insignificant
// whitespace, as json.Compact does; with html it also escapes <, >, &,
// U+2028 and U+2029, as Marshal does for a json.RawMessage. Strings are
// skipped whole, by the quote that ends them, rather than byte by byte.
func appendCompact(dst, src []byte, html bool) []byte {
	if html { // rare: only canonical encodings of events without an outcome
		return appendHTMLEscaped(dst, appendCompact(nil, src, false))
	}
	start := 0
	for i := 0; i < len(src); {
		switch src[i] {
		case '"':
			i = stringEnd(src, i+1)
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[start:i]...)
			i++
			start = i
		default:
			i++
		}
	}
	return append(dst, src[start:]...)
}

// stringEnd returns the index after the quote that ends the JSON string
// whose contents start at b[i]: the first quote not escaped by an odd
// number of backslashes.
func stringEnd(b []byte, i int) int {
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		j := i + q
		n := 0
		for k := j - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		i = j + 1
	}
}

// appendTime appends t as a JSON string, as time.Time's MarshalJSON does.
// It reports false for the times MarshalJSON refuses: a year outside 0 to
// 9999, or a zone offset of 24 hours or more.
func appendTime(dst []byte, t time.Time) ([]byte, bool) {
	dst = append(dst, '"')
	n := len(dst)
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	ok := len(dst) > n+4 && dst[n+4] == '-'
	if end := dst[len(dst)-1]; ok && end != 'Z' {
		h := dst[len(dst)-5 : len(dst)-3] // the offset's hours, from "+hh:mm"
		ok = dst[len(dst)-6] == '+' || dst[len(dst)-6] == '-'
		ok = ok && (h[0] < '2' || h[0] == '2' && h[1] < '4')
	}
	return append(dst, '"'), ok
}

// appendHTMLEscaped appends b with <, > and & escaped as \u003c, \u003e
// and \u0026, and U+2028 and U+2029 as \u2028 and \u2029, as
// encoding/json's HTML-safe encoding has them. In JSON that encoding/json
// wrote without that escaping, those bytes occur only inside strings, so
// escaping them wherever they are gives the HTML-safe encoding.
func appendHTMLEscaped(dst, b []byte) []byte {
	// Most events hold none of these bytes: four vectorised scans find out.
	if bytes.IndexByte(b, '<') < 0 && bytes.IndexByte(b, '>') < 0 && bytes.IndexByte(b, '&') < 0 && bytes.IndexByte(b, 0xE2) < 0 {
		return append(dst, b...)
	}
	start := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '<', c == '>', c == '&':
			dst = append(dst, b[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && b[i+2]&^1 == 0xA8:
			dst = append(dst, b[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[b[i+2]&0xF])
			i += 2
			start = i + 1
		}
	}
	return append(dst, b[start:]...)
}
