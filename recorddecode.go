package trail

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/mod/sumdb/tlog"
)

// ParseEntry returns the entry of a stored record's bytes, with its Record
// decoded. Every read of the embedded store parses the records it returns,
// so the record shape trail writes (jsonappend.go) is read in one pass,
// without reflection; anything else, such as a field this version does not
// know, is read by encoding/json, which was the only way before.
func ParseEntry(b []byte, digest Digest, hashes []tlog.Hash) (*Entry, error) {
	e := &Entry{Bytes: b, Digest: digest, Hashes: hashes}
	if decodeRecord(b, &e.Record) {
		return e, nil
	}
	e.Record = Record{}
	if err := json.Unmarshal(b, &e.Record); err != nil {
		return nil, err
	}
	return e, nil
}

// decodeRecord reads b into r; false means that b is not in the shape
// trail writes, and r is to be read another way.
func decodeRecord(b []byte, r *Record) (ok bool) {
	withDecoder(b, func(d *jsontext.Decoder) {
		ok = d.PeekKind() == '{' && readObject(d, "", func(name []byte) error { return r.member(d, name) }) == nil
		if ok {
			_, end := d.ReadToken()
			ok = end == io.EOF
		}
	})
	return ok
}

// errShape stops decodeRecord at a member it does not read.
var errShape = Errorf(EINVALID, "not the shape of a stored record")

// member reads the value of the record's member name.
func (r *Record) member(d *jsontext.Decoder, name []byte) error {
	strs := [...]struct {
		name string
		p    *string
	}{
		{"id", &r.ID}, {"log", &r.Log}, {"key_id", &r.KeyID}, {"tenant", &r.Tenant}, {"action", &r.Action},
		{"outcome", &r.Outcome}, {"request_id", &r.RequestID},
	}
	for _, f := range strs {
		if string(name) == f.name {
			return strictStr(d, f.p)
		}
	}
	switch string(name) {
	case "seq":
		v, err := d.ReadValue()
		if err != nil || v.Kind() != '0' {
			return errShape
		}
		if r.Seq, err = strconv.ParseInt(string(v), 10, 64); err != nil {
			return errShape
		}
		return nil
	case "received_at":
		return strictTime(d, &r.ReceivedAt)
	case "time":
		return strictTime(d, &r.Time)
	case "actor":
		a := &r.Actor
		return strictStrings(d, []namedString{{"id", "", &a.ID}, {"type", "", &a.Type}, {"name", "", &a.Name}, {"ip", "", &a.IP}})
	case "target":
		r.Target = &Target{}
		return strictStrings(d, []namedString{{"id", "", &r.Target.ID}, {"type", "", &r.Target.Type}})
	case "source":
		s := &r.Source
		return strictStrings(d, []namedString{{"service", "", &s.Service}, {"host", "", &s.Host}, {"ip", "", &s.IP}})
	case "data":
		v, err := d.ReadValue()
		if err != nil {
			return errShape
		}
		r.Data = bytes.Clone(v)
		return nil
	}
	return errShape
}

// strictStr reads a string, and nothing else, into s.
func strictStr(d *jsontext.Decoder, s *string) error {
	v, err := d.ReadValue()
	if err != nil || v.Kind() != '"' {
		return errShape
	}
	*s = string(unquote(v))
	return nil
}

// strictTime reads an RFC 3339 time into t.
func strictTime(d *jsontext.Decoder, t *time.Time) error {
	var s string
	if err := strictStr(d, &s); err != nil {
		return err
	}
	var err error
	if *t, err = time.Parse(time.RFC3339, s); err != nil {
		return errShape
	}
	return nil
}

// strictStrings reads an object of the string members fields.
func strictStrings(d *jsontext.Decoder, fields []namedString) error {
	if d.PeekKind() != '{' {
		return errShape
	}
	return readObject(d, "", func(name []byte) error {
		for _, f := range fields {
			if string(name) == f.name {
				return strictStr(d, f.dst)
			}
		}
		return errShape
	})
}
