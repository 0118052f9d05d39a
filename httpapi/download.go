package httpapi

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trail-audit/trail"
)

// A streamFormat is how streamLogs writes records: NDJSON (the verbatim
// bytes, one per line) or CSV (the common fields, flattened).
type streamFormat struct {
	contentType string
	filename    string // "" for no Content-Disposition: not a download
	head        []byte // written once, before the first record
	add         func(buf []byte, e *trail.Entry) []byte
}

var (
	ndjsonStream = streamFormat{contentType: "application/x-ndjson", add: appendNDJSON}
	csvStream    = streamFormat{contentType: "text/csv; charset=utf-8", filename: "trail-export.csv",
		head: csvRow(nil, csvColumns), add: appendCSV}
)

// csvColumns are the columns of a CSV export: the common fields of
// DESIGN.md §2 and the receipt, without data.
var csvColumns = []string{"id", "log", "seq", "received_at", "time", "tenant", "actor.id", "actor.type",
	"action", "target.id", "target.type", "source.service", "outcome", "request_id", "key_id"}

// downloadFormat reads GET /logs's format parameter, with which a browser
// (the viewer's export links, which cannot set Accept) asks for every match
// as a file: ndjson or csv. It returns nil without one.
func downloadFormat(q url.Values) (*streamFormat, error) {
	switch v := q.Get("format"); v {
	case "":
		return nil, nil
	case "ndjson":
		f := ndjsonStream
		f.filename = "trail-export.ndjson"
		return &f, nil
	case "csv":
		return &csvStream, nil
	default:
		return nil, trail.Errorf(trail.EINVALID, "parameter \"format\" must be ndjson or csv, not %q", v)
	}
}

func appendNDJSON(buf []byte, e *trail.Entry) []byte {
	buf = append(buf, e.Bytes...) // verbatim: the bytes that were hashed
	return append(buf, '\n')
}

// appendCSV reads the row from the record's bytes: a store's List fills an
// entry's Record only as far as its index goes (trail.Reader), which leaves
// out request_id and key_id.
func appendCSV(buf []byte, e *trail.Entry) []byte {
	var r trail.Record
	if json.Unmarshal(e.Bytes, &r) != nil {
		r = e.Record // stored bytes are JSON; never reached
	}
	t := r.TargetOrZero()
	fields := []string{r.ID, r.Log, strconv.FormatInt(r.Seq, 10),
		r.ReceivedAt.Format(time.RFC3339Nano), r.Time.Format(time.RFC3339Nano), r.Tenant, r.Actor.ID, r.Actor.Type,
		r.Action, t.ID, t.Type, r.Source.Service, r.Outcome, r.RequestID, r.KeyID}
	// A field a spreadsheet would read as a formula (a leading =, +, -, @,
	// tab or CR) gets a leading quote, as OWASP advises against CSV
	// injection: producers choose these values, and auditors open the
	// export in a spreadsheet. The NDJSON download keeps them verbatim.
	for i, f := range fields {
		if f != "" && strings.IndexByte("=+-@\t\r", f[0]) >= 0 {
			fields[i] = "'" + f
		}
	}
	return csvRow(buf, fields)
}

// csvRow appends one CSV record (RFC 4180, CRLF) to buf.
func csvRow(buf []byte, fields []string) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.UseCRLF = true
	w.Write(fields) // a bytes.Buffer does not fail
	w.Flush()
	return append(buf, b.Bytes()...)
}
