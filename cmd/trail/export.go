package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/trail-audit/trail/client"
)

// runExport saves a log as an export file: a header line with the signed
// checkpoint, then every record it covers, verbatim, in seq order.
func (c *cli) runExport(ctx context.Context, args []string) error {
	fs := newFlagSet("export", "[flags]", "Export a log's records up to its latest signed checkpoint as NDJSON,\nfor archiving or for checking offline with \"trail verify --file\".", c.stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "trail server URL")
	var caFile string
	caFileFlag(fs, &caFile)
	log := fs.String("log", "", "log to export (default: the server's own log)")
	out := fs.String("o", "-", "output file (- for standard output)")
	token := fs.String("token", "", "API `key` with scope audit (prefer TRAIL_TOKEN)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	body, err := client.New(*url, append(caFileOption(caFile), client.WithToken(*token))...).Export(ctx, *log, 0, -1)
	if err != nil {
		return fmt.Errorf("export: %w (is the server at %s running? set --url)", err, *url)
	}
	defer body.Close()
	var w io.Writer = c.stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.Create(*out); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	lc := &lineCounter{w: bw, p: newProgress(c.stderr, "export")}
	if _, err := io.Copy(lc, body); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	lc.p.finish(max(lc.n-1, 0), -1, "records") // the first line is the header
	return nil
}

// lineCounter passes bytes through and reports progress by lines.
type lineCounter struct {
	w io.Writer
	p *progress
	n int64
}

func (l *lineCounter) Write(b []byte) (int, error) {
	l.n += int64(bytes.Count(b, []byte{'\n'}))
	l.p.update(max(l.n-1, 0), -1, "records")
	return l.w.Write(b)
}
