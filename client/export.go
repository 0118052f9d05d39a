package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/trail-audit/trail"
)

// ExportHeader is the first line of an export.
type ExportHeader = trail.ExportHeader

// Export streams log's records with from <= seq < to (to < 0: up to the
// latest checkpoint; to == EndOfLog: every stored record), as an export:
// a header line, then each record's bytes verbatim, one a line. The caller
// closes the reader.
func (c *Client) Export(ctx context.Context, log string, from, to int64) (io.ReadCloser, error) {
	q := url.Values{}
	if log != "" {
		q.Set("log", log)
	}
	q.Set("from", strconv.FormatInt(from, 10))
	switch {
	case to == EndOfLog:
		q.Set("to", "end")
	case to >= 0:
		q.Set("to", strconv.FormatInt(to, 10))
	}
	resp, err := c.do(ctx, &request{method: http.MethodGet, path: "/export", query: q, accept: "application/x-ndjson", idempotent: true})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errorFrom(resp)
	}
	return resp.Body, nil
}

// EndOfLog asks Export for every stored record, past the latest checkpoint.
const EndOfLog = int64(-2)

// ReadExport reads an export's header and returns an iterator over its
// records' bytes. The iteration stops at the first error, which it yields.
func ReadExport(r io.Reader) (*ExportHeader, iter.Seq2[[]byte, error], error) {
	h, br, err := readExportHeader(r)
	if err != nil {
		return nil, nil, err
	}
	records := func(yield func([]byte, error) bool) {
		for {
			b, err := nextRecord(br)
			if err == io.EOF {
				return
			} else if err != nil {
				yield(nil, err)
				return
			}
			if !yield(bytes.Clone(b), nil) {
				return
			}
		}
	}
	return h, records, nil
}

// readExportHeader reads an export's header line and returns the reader
// of the records after it, for nextRecord.
func readExportHeader(r io.Reader) (*ExportHeader, *bufio.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	line, err := br.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return nil, nil, fmt.Errorf("trail client: export: no header line: %w", err)
	}
	var h ExportHeader
	if err := json.Unmarshal(line, &h); err != nil || h.Format != 1 || h.Log == "" {
		return nil, nil, fmt.Errorf("trail client: export: the first line is not a trail export header (want {\"trail_export\":1,...})")
	}
	return &h, br, nil
}

// nextRecord returns the next record's bytes of an export, or io.EOF after
// the last. Blank lines are skipped. The bytes are valid until the next
// call: a line is read in place from br's buffer, not copied, unless it is
// longer than the buffer.
func nextRecord(br *bufio.Reader) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			head := bytes.Clone(line) // before the next read overwrites it
			rest, rerr := br.ReadBytes('\n')
			line, err = append(head, rest...), rerr
		}
		if b := bytes.TrimSpace(line); len(b) > 0 {
			if err != nil && err != io.EOF {
				return nil, fmt.Errorf("trail client: export: %w", err)
			}
			return b, nil
		}
		if err == io.EOF {
			return nil, io.EOF
		} else if err != nil {
			return nil, fmt.Errorf("trail client: export: %w", err)
		}
	}
}
