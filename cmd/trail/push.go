package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/trail-audit/trail/client"
)

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	url     string
	caFile  string
	retries int
	timeout time.Duration
	token   string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "url", "http://127.0.0.1:8080", "trail server `URL`")
	caFileFlag(fs, &f.caFile)
	fs.IntVar(&f.retries, "retries", client.DefaultRetries, "retries of a request refused with 503 or lost to a connection error (0: none)")
	fs.DurationVar(&f.timeout, "timeout", time.Minute, "give up on one request, retries included, after `duration`")
	fs.StringVar(&f.token, "token", "", "API `key` or viewer token, sent as Authorization: Bearer (prefer TRAIL_TOKEN: arguments are visible to other users)")
}

func (f *clientFlags) client(opts ...client.Option) *client.Client {
	base := []client.Option{client.WithRetries(f.retries), client.WithUserAgent("trail-cli/" + versionString()), client.WithToken(f.token)}
	return client.New(f.url, append(append(base, caFileOption(f.caFile)...), opts...)...)
}

const pushAbout = `Push sends events to the server and prints one receipt per event, as NDJSON.
Events come from the arguments (each a JSON object, or an array of them), or from --file
(default: stdin) as NDJSON or a JSON array. They are sent --batch at a time;
each request is atomic. An event without an "id" gets a UUIDv7 before it is
sent, so that a retry cannot store it twice; give events ids of your own to
make re-running the whole push safe too.
`

func (c *cli) runPush(ctx context.Context, args []string) error {
	var cf clientFlags
	fs := newFlagSet("push", "[flags] [EVENT_JSON ...]", pushAbout, c.stderr)
	cf.register(fs)
	file := fs.String("file", "-", "read events from `file` (\"-\": stdin) when none are given as arguments")
	batch := fs.Int("batch", 1000, "`events` per request")
	ids := fs.Bool("ids", true, "give events without an id a UUIDv7 before sending")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := positive("batch", int64(*batch)); err != nil {
		return err
	}
	var events []json.RawMessage
	if fs.NArg() > 0 {
		for _, a := range fs.Args() {
			if !strings.HasPrefix(strings.TrimSpace(a), "[") {
				events = append(events, json.RawMessage(a))
				continue
			}
			var evs []json.RawMessage
			if err := json.Unmarshal([]byte(a), &evs); err != nil {
				return usageError{fmt.Errorf("push: argument %q is not a JSON array of events: %v", a, err)}
			}
			events = append(events, evs...)
		}
	} else {
		in := c.stdin
		if *file != "-" {
			f, err := os.Open(*file)
			if err != nil {
				return fmt.Errorf("push: %w", err)
			}
			defer f.Close()
			in = f
		}
		var err error
		if events, err = readEvents(in); err != nil {
			return fmt.Errorf("push: %w", err)
		}
	}
	if len(events) == 0 {
		return usageError{errors.New("push: no events: give them as arguments, or as NDJSON on stdin or in --file")}
	}
	var opts []client.Option
	if !*ids {
		opts = append(opts, client.WithIDs(nil))
	}
	cl := cf.client(opts...)
	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for start := 0; start < len(events); start += *batch {
		end := min(start+*batch, len(events))
		rctx, cancel := context.WithTimeout(ctx, cf.timeout)
		res, err := cl.PushRaw(rctx, events[start:end]...)
		cancel()
		if err != nil {
			if start > 0 {
				return fmt.Errorf("push: events %d to %d (none of them stored; the %d before them were): %w", start, end-1, start, err)
			}
			return fmt.Errorf("push: %w", err)
		}
		for _, r := range res.Receipts {
			enc.Encode(r)
		}
	}
	return nil
}

// readEvents reads a JSON array of events, or NDJSON (blank lines skipped).
func readEvents(r io.Reader) ([]json.RawMessage, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := peekNonSpace(br)
	if err == io.EOF {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if first == '[' {
		var events []json.RawMessage
		if err := json.NewDecoder(br).Decode(&events); err != nil {
			return nil, fmt.Errorf("read JSON array: %w", err)
		}
		return events, nil
	}
	var events []json.RawMessage
	for {
		line, err := br.ReadBytes('\n')
		if line = bytes.TrimSpace(line); len(line) > 0 {
			events = append(events, json.RawMessage(line))
		}
		if err == io.EOF {
			return events, nil
		} else if err != nil {
			return nil, err
		}
	}
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}
