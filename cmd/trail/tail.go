package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
)

const tailAbout = `Tail prints the last records that match the filters, oldest first, as NDJSON
(each record's stored bytes, verbatim). With --follow it then prints every
new matching record as the server commits it, until interrupted.

The first records are ordered by their event time ("time"). --follow streams
from the server (GET /logs/stream, Server-Sent Events): new records come in
commit order, backdated or delayed events included, each once. It
reconnects by itself after a dropped connection or a server restart and
resumes where it stopped. With several replicas over MongoDB, a stream
follows the log of the replica that answers (docs/API.md).

Examples:
  trail tail --action 'account.*' --follow
  trail tail --last 0 --follow --tenant acme --outcome failure
`

// queryFlags are the filters of GET /logs.
func queryFlags(fs *flag.FlagSet, q *client.Query) func() error {
	fs.StringVar(&q.Tenant, "tenant", "", "only records of `tenant`")
	fs.StringVar(&q.Actor, "actor", "", "only records whose actor.id is `id`")
	fs.StringVar(&q.ActorType, "actor-type", "", "only records whose actor.type is `type`")
	fs.StringVar(&q.Action, "action", "", "only records with `action` (exact, or a prefix as account.*)")
	fs.StringVar(&q.Target, "target", "", "only records whose target.id is `id`")
	fs.StringVar(&q.TargetType, "target-type", "", "only records whose target.type is `type`")
	fs.StringVar(&q.Source, "source", "", "only records whose source.service is `service`")
	fs.StringVar(&q.Outcome, "outcome", "", "only records with `outcome` (success, failure, unknown)")
	since := fs.String("since", "", "only records with time at or after `time` (RFC 3339)")
	until := fs.String("until", "", "only records with time before `time` (RFC 3339)")
	return func() error {
		for _, t := range []struct {
			name, v string
			to      *time.Time
		}{{"since", *since, &q.Since}, {"until", *until, &q.Until}} {
			if t.v == "" {
				continue
			}
			v, err := time.Parse(time.RFC3339Nano, t.v)
			if err != nil {
				return usageError{fmt.Errorf("--%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", t.name, t.v)}
			}
			*t.to = v
		}
		return nil
	}
}

func (c *cli) runTail(ctx context.Context, args []string) error {
	var cf clientFlags
	var q client.Query
	fs := newFlagSet("tail", "[flags]", tailAbout, c.stderr)
	cf.register(fs)
	parseTimes := queryFlags(fs, &q)
	last := fs.Int("last", 10, "print the last `n` matching records first")
	all := fs.Bool("all", false, "print every matching record first, not only the last ones")
	follow := fs.Bool("follow", false, "then print new records as they are committed, until interrupted")
	interval := fs.Duration("interval", time.Second, "unused: --follow streams rather than polls (kept so that scripts still run)")
	page := fs.Int("page", 1000, "records per request (at most 1000)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := parseTimes(); err != nil {
		return err
	}
	if err := positive("interval", int64(*interval)); err != nil {
		return err
	}
	if *page < 1 || *page > 1000 {
		return usageError{fmt.Errorf("--page must be 1 to 1000, not %d", *page)}
	}
	if *last < 0 {
		return usageError{fmt.Errorf("--last must not be negative, not %d", *last)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("tail: unexpected argument %q", fs.Arg(0))}
	}
	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	t := &tailer{cl: cf.client(), out: out, timeout: cf.timeout}
	var f *client.Follower
	if *follow {
		// Subscribe before reading the past, so that nothing committed in
		// between is lost; what both show is printed once (tailer.print).
		var err error
		if f, err = t.startFollow(ctx, q); err != nil {
			return err
		}
		defer f.Close()
	}
	if err := t.printPast(ctx, q, *last, *all, *page); err != nil {
		return err
	}
	if f == nil {
		return nil
	}
	return t.follow(ctx, f)
}

// printPast prints every matching record (all), or the last n, oldest
// first.
func (t *tailer) printPast(ctx context.Context, q client.Query, n int, all bool, page int) error {
	if all {
		q.Order, q.Limit = "asc", page
		return t.drain(ctx, q)
	}
	if n == 0 {
		return nil
	}
	recs, err := t.newest(ctx, q, n)
	if err != nil {
		return err
	}
	return t.print(recs)
}

// tailer prints records and remembers the position after the last one.
type tailer struct {
	cl      *client.Client
	out     *bufio.Writer
	timeout time.Duration
	cursor  string // after the last printed record

	// With --follow: where the stream began, and the records printed from
	// GET /logs that the stream will deliver again (committed after it
	// began), by id.
	following bool
	start     *trail.Cursor
	printed   map[string]bool
}

// startFollow opens the stream of q's records from the next commit.
func (t *tailer) startFollow(ctx context.Context, q client.Query) (*client.Follower, error) {
	q.Order, q.Limit, q.Cursor = "", 0, ""
	f, err := t.cl.Follow(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("tail: %w", err)
	}
	t.following, t.printed = true, map[string]bool{}
	if pos := f.Position(); pos != "" {
		if t.start, err = trail.ParseCursor(pos); err != nil {
			f.Close()
			return nil, fmt.Errorf("tail: the stream's first id: %w", err)
		}
	}
	return f, nil
}

// follow prints the stream's records until ctx ends, skipping those that
// were printed already.
func (t *tailer) follow(ctx context.Context, f *client.Follower) error {
	for {
		if err := t.out.Flush(); err != nil {
			return err
		}
		ev, err := f.Next()
		if ctx.Err() != nil {
			return nil // interrupted: a normal end for tail -f
		}
		if err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		var r trail.Record
		if err := json.Unmarshal(ev.Record, &r); err != nil {
			return fmt.Errorf("tail: decode record: %w", err)
		}
		if t.printed[r.ID] {
			delete(t.printed, r.ID)
			continue
		}
		t.out.Write(ev.Record)
		t.out.WriteByte('\n')
	}
}

func (t *tailer) list(ctx context.Context, q client.Query) (*client.Page, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	p, err := t.cl.List(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("tail: %w", err)
	}
	return p, nil
}

// newest returns the n newest records that match q, oldest first.
func (t *tailer) newest(ctx context.Context, q client.Query, n int) ([]json.RawMessage, error) {
	q.Order = "desc"
	var recs []json.RawMessage
	for len(recs) < n {
		q.Limit = min(n-len(recs), 1000)
		p, err := t.list(ctx, q)
		if err != nil {
			return nil, err
		}
		recs = append(recs, p.Events...)
		if p.Next == "" || len(p.Events) == 0 {
			break
		}
		q.Cursor = p.Next
	}
	slices.Reverse(recs)
	return recs, nil
}

// drain prints every record after the cursor, in ascending order.
func (t *tailer) drain(ctx context.Context, q client.Query) error {
	for {
		q.Cursor = t.cursor
		p, err := t.list(ctx, q)
		if err != nil {
			return err
		}
		if err := t.print(p.Events); err != nil {
			return err
		}
		if p.Next == "" || len(p.Events) == 0 {
			return nil
		}
	}
}

func (t *tailer) print(recs []json.RawMessage) error {
	for _, r := range recs {
		t.out.Write(r)
		t.out.WriteByte('\n')
		if t.following {
			var rec trail.Record
			if err := json.Unmarshal(r, &rec); err != nil {
				return fmt.Errorf("tail: decode record: %w", err)
			}
			if t.start == nil || rec.Log == t.start.Log && rec.Seq > t.start.Seq {
				t.printed[rec.ID] = true
			}
		}
	}
	if len(recs) > 0 {
		var err error
		if t.cursor, err = cursorAfter(recs[len(recs)-1]); err != nil {
			return err
		}
	}
	return nil
}

// cursorAfter returns the cursor of GET /logs that resumes after the record.
// The API's cursor is opaque to producers; this command ships with the
// server and builds it with the server's own type (trail.Cursor), because a
// page's "next" is null once the last record is reached, and following
// must resume from there.
func cursorAfter(rec json.RawMessage) (string, error) {
	var r trail.Record
	if err := json.Unmarshal(rec, &r); err != nil {
		return "", fmt.Errorf("tail: decode record: %w", err)
	}
	c := trail.Cursor{Time: r.Time.UnixNano(), Log: r.Log, Seq: r.Seq}
	return c.String(), nil
}
