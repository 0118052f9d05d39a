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
(each record's stored bytes, verbatim). With --follow it then polls for new
ones until interrupted.

Records are ordered by their event time ("time"), so --follow does not show
a record that arrives later with a time before the last one printed (a
producer's backdated or delayed event); query with --since to see those.
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
	follow := fs.Bool("follow", false, "keep polling for new records")
	interval := fs.Duration("interval", time.Second, "poll every `duration` with --follow")
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
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("tail: unexpected argument %q", fs.Arg(0))}
	}
	cl := cf.client()
	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	t := &tailer{cl: cl, out: out, timeout: cf.timeout}

	if *last < 0 {
		return usageError{fmt.Errorf("--last must not be negative, not %d", *last)}
	}
	if !*all {
		// Start at the last n records (newest first from the server, so
		// printed in reverse), or just after the newest one for --last 0.
		// An empty result leaves the cursor at the beginning.
		recs, err := t.newest(ctx, q, max(*last, 1))
		if err != nil {
			return err
		}
		if *last == 0 {
			if len(recs) > 0 {
				if t.cursor, err = cursorAfter(recs[len(recs)-1]); err != nil {
					return err
				}
			}
			recs = nil
		}
		if err := t.print(recs); err != nil {
			return err
		}
		if !*follow {
			return nil
		}
	}
	q.Order, q.Limit = "asc", *page
	for {
		if err := t.drain(ctx, q); err != nil {
			return err
		}
		if !*follow {
			return nil
		}
		out.Flush()
		select {
		case <-time.After(*interval):
		case <-ctx.Done():
			return nil // interrupted: a normal end for tail -f
		}
	}
}

// tailer prints records and remembers the position after the last one.
type tailer struct {
	cl      *client.Client
	out     *bufio.Writer
	timeout time.Duration
	cursor  string // after the last printed record
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
