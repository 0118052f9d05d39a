package trail

import (
	"bytes"
	"io"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// eventDecoder is a strict jsontext decoder and the buffer it reads, kept
// for reuse: the decoder keeps the tables it finds duplicate names with.
type eventDecoder struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

var decoders = sync.Pool{New: func() any { return new(eventDecoder) }}

// decodeEvent reads the JSON object b into w in one pass. The tokenizer
// does the strict reading (strictJSON: duplicate names, invalid UTF-8 and
// lone surrogates are syntax errors); members are matched by their exact
// names and read straight into w, without reflection. Its errors read as
// those of jsonv2.Unmarshal with strictJSON, which it replaces.
func decodeEvent(b []byte, w *wireEvent) (err error) {
	withDecoder(b, func(d *jsontext.Decoder) {
		err = readObject(d, "", func(name []byte) error { return w.member(d, name) })
		if err == nil {
			if _, end := d.ReadToken(); end != io.EOF {
				err = Errorf(EINVALID, "unexpected data after the event object")
			}
		}
	})
	return err
}

// withDecoder calls fn with a pooled strict decoder (strictJSON) that
// reads b in place, and returns the decoder to the pool after.
func withDecoder(b []byte, fn func(d *jsontext.Decoder)) {
	ed := decoders.Get().(*eventDecoder)
	ed.buf = *bytes.NewBuffer(b)
	d := &ed.dec
	d.Reset(&ed.buf, strictJSON) // a bytes.Buffer is read in place
	defer func() {
		ed.buf = bytes.Buffer{} // drop b
		d.Reset(&ed.buf)
		decoders.Put(ed)
	}()
	fn(d)
}

// parseBatchFast reads a batch in one pass: one strict decoder reads the
// array and each event in it. It succeeds only for a batch that is valid
// in full; for any problem ok is false, and ParseBatch reads the batch
// again the slow way, item by item, to name every bad item and why.
func parseBatchFast(b []byte, lim Limits) (events []*Event, ok bool) {
	withDecoder(b, func(d *jsontext.Decoder) { events, ok = readBatch(d, lim) })
	return events, ok
}

// readBatch is parseBatchFast's reading, from d.
func readBatch(d *jsontext.Decoder, lim Limits) (events []*Event, ok bool) {
	if d.PeekKind() != '[' {
		return nil, false
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, false
	}
	var ids map[string]bool
	for d.PeekKind() == '{' {
		start := d.InputOffset() // before the comma and space: the item is no longer
		var w wireEvent
		if readObject(d, "", func(name []byte) error { return w.member(d, name) }) != nil {
			return nil, false
		}
		if n := d.InputOffset() - start; lim.MaxEventBytes > 0 && n > int64(lim.MaxEventBytes) {
			return nil, false
		}
		e, err := w.finish(lim)
		if err != nil || lim.MaxBatchEvents > 0 && len(events) == lim.MaxBatchEvents {
			return nil, false
		}
		if e.ID != "" {
			if ids == nil {
				ids = make(map[string]bool)
			}
			if ids[e.ID] {
				return nil, false
			}
			ids[e.ID] = true
		}
		events = append(events, e)
	}
	if _, err := d.ReadToken(); err != nil || len(events) == 0 { // ']'
		return nil, false
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return nil, false
	}
	return events, true
}

// member reads the value of the top-level member name.
func (w *wireEvent) member(d *jsontext.Decoder, name []byte) error {
	strs := [len(w.vals.strs)]struct {
		name string
		p    **string
	}{
		{"id", &w.ID}, {"time", &w.Time}, {"tenant", &w.Tenant}, {"action", &w.Action}, {"outcome", &w.Outcome},
		{"request_id", &w.RequestID}, {"user_id", &w.UserID}, {"event_type", &w.EventType},
		{"timestamp", &w.Timestamp}, {"src_service", &w.SrcService},
	}
	for i, f := range strs {
		if string(name) == f.name {
			var err error
			*f.p, err = w.str(d, i, f.name)
			return err
		}
	}
	var err error
	switch string(name) {
	case "actor":
		a := &w.vals.actor
		w.Actor, err = readStrings(d, "actor", a, []namedString{
			{"id", "actor.id", &a.ID}, {"type", "actor.type", &a.Type}, {"name", "actor.name", &a.Name}, {"ip", "actor.ip", &a.IP},
		})
	case "target":
		t := &w.vals.target
		w.Target, err = readStrings(d, "target", t, []namedString{{"id", "target.id", &t.ID}, {"type", "target.type", &t.Type}})
	case "source":
		src := &w.vals.source
		w.Source, err = readStrings(d, "source", src, []namedString{
			{"service", "source.service", &src.Service}, {"host", "source.host", &src.Host}, {"ip", "source.ip", &src.IP},
		})
	case "data":
		w.Data, err = readRaw(d)
	case "invariant_data":
		w.InvariantData, err = readRaw(d)
	case "app_data":
		w.AppData, err = readRaw(d)
	case "variant_data":
		w.VariantData, err = readRaw(d)
	default:
		err = unknownField("", name)
	}
	return err
}

// namedString is a string member of a nested object: its name, its path
// for errors, and where its value goes.
type namedString struct {
	name, path string
	dst        *string
}

// readStrings reads the member field, an object of the string members
// fields or null, and returns v, or nil for null.
func readStrings[T any](d *jsontext.Decoder, field string, v *T, fields []namedString) (*T, error) {
	ok, err := readNested(d, field, func(name []byte) error {
		for _, f := range fields {
			if string(name) == f.name {
				return readInto(d, f.path, f.dst)
			}
		}
		return unknownField(field+".", name)
	})
	if !ok {
		return nil, err
	}
	return v, err
}

// readNested reads the member field, an object or null, calling member
// for each of its names. ok is false for null (or an error).
func readNested(d *jsontext.Decoder, field string, member func(name []byte) error) (ok bool, err error) {
	switch d.PeekKind() {
	case '{':
		return true, readObject(d, field, member)
	case 'n':
		_, err := d.ReadValue()
		return false, jsonErr(err)
	}
	v, err := d.ReadValue()
	if err != nil {
		return false, jsonError(err)
	}
	return false, Errorf(EINVALID, "field %q must be an object, not JSON %s", field, jsonKindName(v.Kind()))
}

// readObject reads an object, calling member with each name, unquoted;
// member must read the value.
func readObject(d *jsontext.Decoder, field string, member func(name []byte) error) error {
	if _, err := d.ReadToken(); err != nil { // '{', as the caller peeked
		return jsonError(err)
	}
	for d.PeekKind() != '}' {
		v, err := d.ReadValue() // the name; an error if there is none
		if err != nil {
			return jsonError(err)
		}
		if err := member(unquote(v)); err != nil {
			return err
		}
	}
	_, err := d.ReadToken()
	return jsonErr(err)
}

// str reads a string into w.vals.strs[i] and points to it; null gives nil.
func (w *wireEvent) str(d *jsontext.Decoder, i int, field string) (*string, error) {
	s, ok, err := readStr(d, field)
	if !ok {
		return nil, err
	}
	w.vals.strs[i] = s
	return &w.vals.strs[i], nil
}

// readInto reads a string into s; null leaves s as it is.
func readInto(d *jsontext.Decoder, field string, s *string) error {
	v, ok, err := readStr(d, field)
	if ok {
		*s = v
	}
	return err
}

// readStr reads a string; ok is false for null (or an error).
func readStr(d *jsontext.Decoder, field string) (s string, ok bool, err error) {
	v, err := d.ReadValue()
	if err != nil {
		return "", false, jsonError(err)
	}
	switch v.Kind() {
	case 'n':
		return "", false, nil
	case '"':
		return string(unquote(v)), true, nil
	}
	return "", false, Errorf(EINVALID, "field %q must be a string, not JSON %s", field, jsonKindName(v.Kind()))
}

// readRaw reads any value, as its bytes: a copy, since the value aliases
// the request body.
func readRaw(d *jsontext.Decoder) (jsontext.Value, error) {
	v, err := d.ReadValue()
	if err != nil {
		return nil, jsonError(err)
	}
	return bytes.Clone(v), nil
}

// unquote returns the contents of the JSON string v, unescaped. The
// tokenizer has checked v, so only an escape needs work.
func unquote(v jsontext.Value) []byte {
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1]
	}
	b, _ := jsontext.AppendUnquote(nil, v)
	return b
}

func unknownField(prefix string, name []byte) error {
	return Errorf(EINVALID, "unknown field %q; field names are exact and lowercase; put event-specific fields in \"data\"", prefix+string(name))
}

// jsonErr is jsonError for an error that may be nil.
func jsonErr(err error) error {
	if err == nil {
		return nil
	}
	return jsonError(err)
}
