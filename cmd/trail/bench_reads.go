package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/trail-audit/trail/client"
)

const benchReadsAbout = `Bench-reads measures reads of a server that holds records (fill it with
trail bench first). --concurrency clients send requests back to back for
--duration, one of:

  get   GET /logs/{id}, of ids sampled at random times across the log
  list  a filtered page: GET /logs?tenant=T&action=A&since=S&until=S+W&limit=100,
        for a random S within the time span of the records the filter
        selects (W is --window; A may end in .* for a prefix)
  path  GET --path, the same each time: /healthz gives the floor that
        HTTP and the machine set, with no store work

With --rate, the clients together offer that many requests a second,
spread evenly, instead of sending back to back: the latency of a read
on a server that is not saturated. A request sent late, because the
answer before it came after it was due, is timed from when it was due,
so that a slow server is not hidden by its clients waiting (no
coordinated omission); the report gives the rate offered beside the
rate achieved.

Reads go out as raw HTTP/1.1 on one keep-alive connection per client, as
trail bench sends its writes, so that the generator takes little of the
CPU the server needs (an https URL goes through the SDK). It reports
requests/s, latency (p50, p90, p99, max), the records returned per list
page, errors, and its own CPU (and the server's, with --server-pid). Send
load only to a server you run.
`

// benchReadsConfig is trail bench-reads' configuration.
type benchReadsConfig struct {
	clientFlags
	mode        string
	path        string
	concurrency int
	duration    time.Duration
	samples     int
	tenant      string
	action      string
	window      time.Duration
	limit       int
	rate        float64
	jsonOut     bool
	serverPID   int
}

// benchReadsReport is what trail bench-reads prints.
type benchReadsReport struct {
	Mode         string        `json:"mode"`
	Concurrency  int           `json:"concurrency"`
	Offered      float64       `json:"offered_per_sec,omitempty"`
	Seconds      float64       `json:"seconds"`
	Requests     int64         `json:"requests"`
	PerSecond    float64       `json:"requests_per_sec"`
	Latency      latencyReport `json:"latency_ms"`
	Errors       int64         `json:"errors"`
	FirstError   string        `json:"first_error,omitempty"`
	RecordsPer   float64       `json:"records_per_request"`
	GeneratorCPU *cpuReport    `json:"generator_cpu,omitempty"`
	ServerCPU    *cpuReport    `json:"server_cpu,omitempty"`
}

func (c *cli) runBenchReads(ctx context.Context, args []string) error {
	var cfg benchReadsConfig
	fs := newFlagSet("bench-reads", "[flags]", benchReadsAbout, c.stderr)
	cfg.register(fs)
	fs.StringVar(&cfg.mode, "mode", "get", "`reads` to send: get, list or path")
	fs.StringVar(&cfg.path, "path", "/healthz", "`path` that --mode path gets")
	fs.IntVar(&cfg.concurrency, "concurrency", 8, "concurrent `clients`, each with one request in flight")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to send reads")
	fs.IntVar(&cfg.samples, "samples", 2000, "ids to sample across the log for get")
	fs.StringVar(&cfg.tenant, "tenant", "", "`tenant` filter of list (empty: none)")
	fs.StringVar(&cfg.action, "action", "", "`action` filter of list, exact or a prefix ending in .* (empty: none)")
	fs.DurationVar(&cfg.window, "window", time.Minute, "time range of list's filter")
	fs.IntVar(&cfg.limit, "limit", 100, "page size of list")
	fs.Float64Var(&cfg.rate, "rate", 0, "requests a `second` the clients offer together, evenly spaced (0: back to back)")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the report as JSON, for scripts")
	fs.IntVar(&cfg.serverPID, "server-pid", 0, "`pid` of the server, on the same Linux machine, to report its CPU as well (from /proc)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.mode != "get" && cfg.mode != "list" && cfg.mode != "path" {
		return usageError{fmt.Errorf("bench-reads: --mode %q: want get, list or path", cfg.mode)}
	}
	if !strings.HasPrefix(cfg.path, "/") {
		return usageError{fmt.Errorf("bench-reads: --path %q: want an absolute path, such as /healthz", cfg.path)}
	}
	if cfg.concurrency <= 0 || cfg.duration <= 0 || cfg.samples <= 0 || cfg.limit <= 0 || cfg.window <= 0 {
		return usageError{errors.New("bench-reads: --concurrency, --duration, --samples, --limit and --window must be positive")}
	}
	if !(cfg.rate >= 0 && cfg.rate <= 1e9) { // NaN fails both
		return usageError{fmt.Errorf("bench-reads: --rate %v: want requests a second, 0 (back to back) to 1e9", cfg.rate)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("bench-reads: unexpected argument %q", fs.Arg(0))}
	}
	rep, err := benchReads(ctx, &cfg, c.stderr)
	if err != nil {
		return err
	}
	if cfg.jsonOut {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.print(c.stdout)
	return nil
}

// logSpan returns the times of the oldest and the newest record that q
// selects.
func logSpan(ctx context.Context, cl *client.Client, q client.Query) (time.Time, time.Time, error) {
	var ts [2]time.Time
	for i, order := range []string{"asc", "desc"} {
		q.Order, q.Limit = order, 1
		p, err := cl.List(ctx, q)
		if err != nil {
			return ts[0], ts[1], fmt.Errorf("bench-reads: the log's time span: %w", err)
		}
		rs, err := p.Records()
		if err != nil || len(rs) == 0 {
			return ts[0], ts[1], errors.New("bench-reads: the log is empty, or no record matches --tenant and --action; fill it with trail bench first")
		}
		ts[i] = rs[0].Time
	}
	return ts[0], ts[1], nil
}

// sampleIDs returns ids of records at n random times in [from, to].
func sampleIDs(ctx context.Context, cl *client.Client, from, to time.Time, n int, stderr io.Writer) ([]string, error) {
	ids := make([]string, 0, n)
	span := to.Sub(from)
	for len(ids) < n {
		at := from.Add(time.Duration(rand.Int64N(int64(span) + 1)))
		p, err := cl.List(ctx, client.Query{Order: "asc", Since: at, Limit: 1})
		if err != nil {
			return nil, fmt.Errorf("bench-reads: sampling ids: %w", err)
		}
		rs, err := p.Records()
		if err != nil {
			return nil, err
		}
		if len(rs) == 1 {
			ids = append(ids, rs[0].ID)
		}
		if len(ids)%500 == 0 && len(ids) > 0 {
			fmt.Fprintf(stderr, "bench-reads: sampled %d of %d ids\n", len(ids), n)
		}
	}
	return ids, nil
}

func benchReads(ctx context.Context, cfg *benchReadsConfig, stderr io.Writer) (*benchReadsReport, error) {
	cl := cfg.client()
	// A list's windows fall within the span of the records it selects.
	q := client.Query{}
	if cfg.mode == "list" {
		q.Tenant, q.Action = cfg.tenant, cfg.action
	}
	var from, to time.Time
	var err error
	if cfg.mode != "path" {
		if from, to, err = logSpan(ctx, cl, q); err != nil {
			return nil, err
		}
	}
	var ids []string
	if cfg.mode == "get" {
		if ids, err = sampleIDs(ctx, cl, from, to, cfg.samples, stderr); err != nil {
			return nil, err
		}
	}
	if cfg.rate > 0 {
		fmt.Fprintf(stderr, "bench-reads: offering %.0f requests/s\n", cfg.rate)
	}
	if cfg.mode == "path" {
		fmt.Fprintf(stderr, "bench-reads: GET %s, %d clients, %v\n", cfg.path, cfg.concurrency, cfg.duration)
	} else {
		fmt.Fprintf(stderr, "bench-reads: %s, %d clients, %v, over records from %s to %s\n", cfg.mode, cfg.concurrency, cfg.duration, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	meter, err := startCPUMeter(cfg.serverPID)
	if err != nil {
		return nil, err
	}
	raw, err := newRawTarget(&cfg.clientFlags)
	if err != nil {
		return nil, fmt.Errorf("bench-reads: %w", err)
	}
	if raw == nil && cfg.mode == "path" {
		return nil, errors.New("bench-reads: --mode path needs an http:// URL (it sends raw HTTP/1.1)")
	}
	start := time.Now()
	res := runReaders(ctx, cfg, cl, raw, start.Add(cfg.duration), func(w *readWorker) (int, error) { return w.read(ctx, ids, from, to) })
	wall := time.Since(start)
	self, server, err := meter.stop()
	if err != nil {
		return nil, err
	}
	n := len(res.lat)
	rep := &benchReadsReport{
		Mode: cfg.mode, Concurrency: cfg.concurrency, Offered: cfg.rate, Seconds: wall.Seconds(), Requests: int64(n),
		PerSecond: float64(n) / wall.Seconds(), Latency: latencies(res.lat), Errors: res.errs, FirstError: res.firstErr,
	}
	if n > 0 {
		rep.RecordsPer = float64(res.records) / float64(n)
	}
	if self >= 0 {
		rep.GeneratorCPU = newCPUReport(0, self, wall, rep.Requests)
	}
	if cfg.serverPID > 0 {
		rep.ServerCPU = newCPUReport(cfg.serverPID, server, wall, rep.Requests)
	}
	return rep, nil
}

// readResults is what the clients of a run got, merged.
type readResults struct {
	mu       sync.Mutex
	lat      []time.Duration
	errs     int64
	firstErr string
	records  int64
}

// runReaders runs cfg.concurrency clients, each calling read back to back
// until deadline, and merges what they got.
func runReaders(ctx context.Context, cfg *benchReadsConfig, cl *client.Client, raw *rawTarget, deadline time.Time, read func(*readWorker) (int, error)) *readResults {
	res := &readResults{}
	var wg sync.WaitGroup
	// With a rate, client i sends at start + (i + k*concurrency)/rate.
	var every time.Duration
	if cfg.rate > 0 {
		every = time.Duration(float64(time.Second) * float64(cfg.concurrency) / cfg.rate)
	}
	start := time.Now()
	for i := range cfg.concurrency {
		w := &readWorker{cfg: cfg, cl: cl}
		if raw != nil {
			w.rc = &rawConn{t: raw}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w.rc != nil {
				defer w.rc.close()
			}
			var mine readResults
			due := start.Add(every * time.Duration(i) / time.Duration(cfg.concurrency))
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if every > 0 {
					// On time, the clock starts at the send, since a sleep
					// may overshoot by up to a millisecond; late, because
					// the last answer came after this request was due, it
					// starts when the request was due.
					if !due.Before(deadline) {
						break // the next request would go out after the run
					}
					if wait := time.Until(due); wait <= 0 {
						t0 = due
					} else if !sleep(ctx, wait) {
						break
					} else {
						t0 = time.Now()
					}
					due = due.Add(every)
				}
				n, err := read(w)
				mine.lat = append(mine.lat, time.Since(t0))
				mine.records += int64(n)
				if err != nil {
					if mine.errs++; mine.firstErr == "" {
						mine.firstErr = err.Error()
					}
				}
			}
			res.mu.Lock()
			defer res.mu.Unlock()
			res.lat, res.errs, res.records = append(res.lat, mine.lat...), res.errs+mine.errs, res.records+mine.records
			if res.firstErr == "" {
				res.firstErr = mine.firstErr
			}
		}()
	}
	wg.Wait()
	return res
}

// sleep waits for d, or until ctx ends: then it returns false.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// readWorker is one client's connection and buffers. The reads are sent
// as raw HTTP/1.1 (bench_raw.go), as trail bench sends its writes, so that
// the generator takes little of the CPU the server needs; an https URL
// goes through the SDK.
type readWorker struct {
	cfg      *benchReadsConfig
	cl       *client.Client
	rc       *rawConn // nil: the SDK
	req, ans []byte
}

// read sends one request and returns the records it got.
func (w *readWorker) read(ctx context.Context, ids []string, from, to time.Time) (int, error) {
	cfg := w.cfg
	var id, path string
	var q client.Query
	switch cfg.mode {
	case "path":
		path = cfg.path
	case "get":
		id = ids[rand.IntN(len(ids))]
		path = "/logs/" + url.PathEscape(id)
	default:
		span := max(to.Sub(from)-cfg.window, 0)
		since := from.Add(time.Duration(rand.Int64N(int64(span) + 1)))
		q = client.Query{Tenant: cfg.tenant, Action: cfg.action, Since: since, Until: since.Add(cfg.window), Limit: cfg.limit}
		path = "/logs?" + q.Values().Encode()
	}
	if w.rc == nil {
		if cfg.mode == "get" {
			_, _, err := w.cl.Get(ctx, id)
			return 1, err
		}
		p, err := w.cl.List(ctx, q)
		if err != nil {
			return 0, err
		}
		return len(p.Events), nil
	}
	w.req = w.rc.t.get(w.req[:0], path)
	var a rawAnswer
	var err error
	w.ans, a, err = w.rc.roundTrip(w.req, w.ans[:0], time.Now().Add(cfg.timeout))
	if err != nil {
		return 0, err
	}
	if a.status != http.StatusOK {
		return 0, fmt.Errorf("GET %s: status %d: %s", path, a.status, detail(w.ans))
	}
	switch cfg.mode {
	case "get":
		return 1, nil
	case "path":
		return 0, nil
	}
	return countEvents(w.ans)
}

// countEvents counts the records of a GET /logs answer without decoding
// them.
func countEvents(b []byte) (int, error) {
	d := jsontext.NewDecoder(bytes.NewReader(b))
	if _, err := d.ReadToken(); err != nil {
		return 0, err
	}
	for d.PeekKind() == '"' {
		name, err := d.ReadToken()
		if err != nil {
			return 0, err
		}
		if name.String() != "events" {
			if err := d.SkipValue(); err != nil {
				return 0, err
			}
			continue
		}
		if _, err := d.ReadToken(); err != nil { // '['
			return 0, err
		}
		n := 0
		for d.PeekKind() == '{' {
			if err := d.SkipValue(); err != nil {
				return 0, err
			}
			n++
		}
		return n, nil
	}
	return 0, errors.New("an answer of GET /logs without events")
}

func (r *benchReadsReport) print(w io.Writer) {
	fmt.Fprintf(w, "bench-reads %s: %d requests in %.1fs from %d clients: %.0f requests/s, %.1f records each\n", r.Mode, r.Requests, r.Seconds, r.Concurrency, r.PerSecond, r.RecordsPer)
	if r.Offered > 0 {
		fmt.Fprintf(w, "  offered      %.0f requests/s\n", r.Offered)
	}
	l := r.Latency
	fmt.Fprintf(w, "  latency      p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  mean %.2fms\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	if r.Errors > 0 {
		fmt.Fprintf(w, "  errors       %d (first: %s)\n", r.Errors, strings.TrimSpace(r.FirstError))
	}
	for _, c := range []struct {
		name string
		r    *cpuReport
	}{{"generator", r.GeneratorCPU}, {"server", r.ServerCPU}} {
		if c.r != nil {
			fmt.Fprintf(w, "  %-12s %.2f cores, %.1f CPU-µs per request\n", c.name+" CPU", c.r.Cores, c.r.USPerEvent)
		}
	}
}
