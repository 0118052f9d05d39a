package trail

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// FuzzParseEvent checks the strict decoder against a second, independent
// reading built on encoding/json (v1): a token walk that refuses duplicate
// keys, a scan for lone surrogates, exact-case field names, then the old
// v1 decoding and the same validation. Both must accept and refuse the
// same inputs, and read accepted ones as the same event.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`,
		`{"action":"a.b","action":"c.d","actor":{"id":"u"},"source":{"service":"s"}}`,
		`{"action":"a.b","actor":{"id":"u","id":"admin"},"source":{"service":"s"}}`,
		`{"ACTION":"a.b","SOURCE":{"Service":"s"},"actor":{"ID":"u"}}`,
		`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{"a":1,"\u0061":2}}`,
		`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{"x":"\ud800"}}`,
		`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{"x":"\ud83d\ude00\\ud800"}}`,
		`{"user_id":"u","event_type":"A.B","timestamp":"2024-01-02T03:04:05Z","src_service":"s","invariant_data":{"a":1},"app_data":null}`,
		`{"id":"..","action":"a.b","actor":{"id":" "},"source":{"service":"s"},"time":"0001-01-01T00:00:00Z"}`,
		`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"target":{},"tenant":"\u0007"} `,
		`{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEvent(b, DefaultLimits)
		r, rerr := referenceParse(b, DefaultLimits)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("input %q: strict says %v, reference says %v", b, err, rerr)
		}
		if err != nil {
			return
		}
		got, _ := json.Marshal(e)
		want, _ := json.Marshal(r)
		if !bytes.Equal(got, want) {
			t.Fatalf("input %q: strict reads %s, reference reads %s", b, got, want)
		}
	})
}

// referenceParse is ParseEvent as encoding/json reads it, made strict by
// checks of its own.
func referenceParse(b []byte, lim Limits) (*Event, error) {
	if len(b) > lim.MaxEventBytes {
		return nil, errors.New("too large")
	}
	if !utf8.Valid(b) {
		return nil, errors.New("invalid UTF-8")
	}
	if err := refWalk(b); err != nil {
		return nil, err
	}
	if err := refLoneSurrogate(b); err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	if err := refExactNames(top, "", "id", "time", "tenant", "actor", "action", "target", "source", "outcome",
		"request_id", "data", "user_id", "event_type", "timestamp", "src_service", "invariant_data", "app_data", "variant_data"); err != nil {
		return nil, err
	}
	for _, nested := range []struct {
		name  string
		names []string
	}{{"actor", []string{"id", "type", "name", "ip"}}, {"target", []string{"id", "type"}}, {"source", []string{"service", "host", "ip"}}} {
		var m map[string]json.RawMessage
		if v, ok := top[nested.name]; ok && json.Unmarshal(v, &m) == nil {
			if err := refExactNames(m, nested.name+".", nested.names...); err != nil {
				return nil, err
			}
		}
	}
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, err
	}
	return w.event()
}

func refExactNames(m map[string]json.RawMessage, prefix string, names ...string) error {
	for k := range m {
		if !slices.Contains(names, k) {
			return fmt.Errorf("unknown field %s%s", prefix, k)
		}
	}
	return nil
}

// refWalk reads b as one JSON value by encoding/json's token stream and
// refuses a key given twice in any object.
func refWalk(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next token of an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) != 0 {
				return io.ErrUnexpectedEOF
			}
			return nil
		} else if err != nil {
			return err
		}
		if k, ok := tok.(string); ok && len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].key {
			n := len(stack)
			if stack[n-1].keys[k] {
				return fmt.Errorf("duplicate key %q", k)
			}
			stack[n-1].keys[k] = true
			stack[n-1].key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].key = true
		} else if n == 0 && dec.More() {
			return errors.New("data after the value")
		}
	}
}

// refLoneSurrogate scans the raw strings of valid JSON b for a \u escape
// of a UTF-16 surrogate that is not part of a pair.
func refLoneSurrogate(b []byte) error {
	in := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case !in:
			in = c == '"'
		case c == '"':
			in = false
		case c == '\\' && b[i+1] == 'u':
			r1, _ := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
			i += 5
			if !utf16.IsSurrogate(rune(r1)) {
				continue
			}
			if r1 >= 0xdc00 || i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
				return errors.New("lone surrogate")
			}
			r2, _ := strconv.ParseUint(string(b[i+3:i+7]), 16, 16)
			if r2 < 0xdc00 || r2 > 0xdfff {
				return errors.New("lone surrogate")
			}
			i += 6
		case c == '\\':
			i++
		}
	}
	return nil
}

// FuzzParseCursor checks that any token either fails cleanly or is a
// cursor that survives a round trip.
func FuzzParseCursor(f *testing.F) {
	f.Add((&Cursor{Time: 1, Log: "main", Seq: 2}).String())
	f.Add((&Cursor{Time: -1 << 63, Log: "a-b", Seq: 1<<63 - 1}).String())
	f.Add("eyJ0IjoxLCJsIjoibWFpbiIsInMiOi0xfQ") // seq -1
	f.Add("%%%")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("ParseCursor(%q): got code %s, want %s", s, ErrorCode(err), EINVALID)
			}
			return
		}
		if c.Log == "" || c.Seq < 0 {
			t.Fatalf("ParseCursor(%q): got %+v, want a log and seq >= 0", s, c)
		}
		again, err := ParseCursor(c.String())
		if err != nil || *again != *c {
			t.Fatalf("round trip of %+v: got %+v, %v", c, again, err)
		}
	})
}
