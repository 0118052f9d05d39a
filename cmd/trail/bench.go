package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/term"
)

const benchAbout = `Bench is a load generator: --concurrency clients each send requests of
--batch events over HTTP, back to back, until --events are acknowledged or
--duration has passed. It shows progress on stderr, then reports events/s,
per-request latency (retries included), the answers by status, and
failures. Last, it reads back every acknowledged id (GET /logs/{id}) and
checks the bytes hash to the receipt's leaf hash; it exits non-zero if any
acknowledged event is missing or differs. Send load only to a server you run.
`

// benchConfig is trail bench's configuration.
type benchConfig struct {
	clientFlags
	concurrency int
	batch       int
	events      int64 // total; 0: unlimited (with --duration)
	duration    time.Duration
	ids         bool
	tenant      string
	action      string
	dataBytes   int
	check       bool
	jsonOut     bool
	progress    time.Duration
}

func (c *cli) runBench(ctx context.Context, args []string) error {
	var cfg benchConfig
	fs := newFlagSet("bench", "[flags]", benchAbout, c.stderr)
	cfg.register(fs)
	fs.IntVar(&cfg.concurrency, "concurrency", 64, "concurrent `clients`, each with one request in flight")
	fs.IntVar(&cfg.batch, "batch", 1, "`events` per request (1 sends a single JSON object)")
	fs.Int64Var(&cfg.events, "events", 100000, "stop after `n` events (with --duration and not set: no limit)")
	fs.DurationVar(&cfg.duration, "duration", 0, "stop after `duration` (0: only --events ends the run)")
	fs.BoolVar(&cfg.ids, "ids", true, "give each event a client-chosen UUIDv7 id, as producers should")
	fs.StringVar(&cfg.tenant, "tenant", "bench", "`tenant` of the generated events")
	fs.StringVar(&cfg.action, "action", "bench.event", "`action` of the generated events")
	fs.IntVar(&cfg.dataBytes, "data-bytes", 100, "approximate `size` of each event's data object")
	fs.BoolVar(&cfg.check, "check", true, "read back every acknowledged event at the end")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the report as JSON, for scripts")
	fs.DurationVar(&cfg.progress, "progress", 5*time.Second, "`interval` of progress lines when stderr is not a terminal (0: none)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	eventsSet := false
	fs.Visit(func(f *flag.Flag) { eventsSet = eventsSet || f.Name == "events" })
	if cfg.duration > 0 && !eventsSet {
		cfg.events = 0
	}
	for _, n := range []struct {
		name string
		v    int64
	}{{"concurrency", int64(cfg.concurrency)}, {"batch", int64(cfg.batch)}} {
		if err := positive(n.name, n.v); err != nil {
			return err
		}
	}
	if cfg.events < 0 || cfg.duration < 0 || cfg.dataBytes < 0 || (cfg.events == 0 && cfg.duration == 0) {
		return usageError{errors.New("bench: give a positive --events, or a --duration")}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))}
	}
	tty := false
	if f, ok := c.stderr.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	rep, err := bench(ctx, &cfg, c.stderr, tty)
	if err != nil {
		return err
	}
	if cfg.jsonOut {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		rep.print(c.stdout)
	}
	if rb := rep.ReadBack; rb != nil && (rb.Missing > 0 || rb.Mismatched > 0 || rb.Errors > 0) {
		return fmt.Errorf("bench: read-back failed: %d acknowledged events missing, %d differ from their receipts, %d could not be read", rb.Missing, rb.Mismatched, rb.Errors)
	}
	if rep.EventsAcked == 0 {
		return errors.New("bench: no event was acknowledged; is the server up at --url?")
	}
	return nil
}

// benchReport is bench's result; --json prints it as is.
type benchReport struct {
	URL            string           `json:"url"`
	Concurrency    int              `json:"concurrency"`
	Batch          int              `json:"batch"`
	IDs            bool             `json:"ids"`
	Seconds        float64          `json:"seconds"`
	Requests       int64            `json:"requests"`
	RequestsFailed int64            `json:"requests_failed"`
	EventsSent     int64            `json:"events_sent"`
	EventsAcked    int64            `json:"events_acked"`
	EventsPerSec   float64          `json:"events_per_sec"`
	RequestsPerSec float64          `json:"requests_per_sec"`
	LatencyMs      latencyReport    `json:"latency_ms"`
	Answers        map[string]int64 `json:"answers"`  // every HTTP attempt, by status or error
	Failures       map[string]int64 `json:"failures"` // requests that failed for good, by cause
	Interrupted    bool             `json:"interrupted,omitempty"`
	ReadBack       *readBackReport  `json:"read_back,omitempty"`
}

type latencyReport struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

type readBackReport struct {
	Checked    int64   `json:"checked"`
	Found      int64   `json:"found"`
	Missing    int64   `json:"missing"`
	Mismatched int64   `json:"mismatched"`
	Errors     int64   `json:"errors"`
	Seconds    float64 `json:"seconds"`
}

// ack is one acknowledged event, for the read-back.
type ack struct {
	id   string
	leaf tlog.Hash
}

// benchWorker is one client's results, merged at the end.
type benchWorker struct {
	latencies []time.Duration
	acks      []ack
	failures  map[string]int64
	failedReq int64
	requests  int64
}

// counter counts strings under a lock; attempts are far fewer than the
// work each one does, so a mutex is no bottleneck.
type counter struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counter) add(k string, n int64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]int64)
	}
	c.m[k] += n
	c.mu.Unlock()
}

func (c *counter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] += v
	}
	return out
}

func bench(ctx context.Context, cfg *benchConfig, stderr io.Writer, tty bool) (*benchReport, error) {
	var answers counter
	opts := []client.Option{
		client.WithObserver(func(a client.Attempt) {
			if a.Method != http.MethodPost {
				return // the health check and the read-back
			}
			if a.Err != nil {
				answers.add(errClass(a.Err), 1)
			} else {
				answers.add(strconv.Itoa(a.Status), 1)
			}
		}),
	}
	if !cfg.ids {
		opts = append(opts, client.WithIDs(nil))
	}
	cl := cfg.client(opts...)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := cl.Health(rctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("bench: server at %s does not answer /healthz: %w; start it with \"trail serve\" or set --url", cfg.url, err)
	}

	pad := strings.Repeat("x", max(cfg.dataBytes-30, 0))
	var issued, acked, failed atomic.Int64
	start := time.Now()
	var deadline time.Time
	if cfg.duration > 0 {
		deadline = start.Add(cfg.duration)
	}
	// Requests in flight finish even after an interrupt, so that every
	// acknowledged event is counted and read back.
	reqCtx := context.WithoutCancel(ctx)

	workers := make([]*benchWorker, cfg.concurrency)
	var wg sync.WaitGroup
	for w := range workers {
		bw := &benchWorker{failures: map[string]int64{}}
		workers[w] = bw
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
				n := int64(cfg.batch)
				first := issued.Add(n) - n
				if cfg.events > 0 {
					if first >= cfg.events {
						return
					}
					n = min(n, cfg.events-first)
				}
				events := make([]*trail.Event, n)
				for i := range events {
					events[i] = &trail.Event{
						Tenant:  cfg.tenant,
						Actor:   trail.Actor{ID: "user-" + strconv.Itoa(rng.IntN(10000)), Type: "user"},
						Action:  cfg.action,
						Target:  &trail.Target{ID: "acct-" + strconv.Itoa(rng.IntN(100000)), Type: "account"},
						Source:  trail.Source{Service: "trail-bench"},
						Outcome: trail.OutcomeSuccess,
						Data:    json.RawMessage(`{"n":` + strconv.FormatInt(first+int64(i), 10) + `,"pad":"` + pad + `"}`),
					}
				}
				t0 := time.Now()
				pctx, cancel := context.WithTimeout(reqCtx, cfg.timeout)
				res, err := cl.Push(pctx, events...)
				cancel()
				bw.latencies = append(bw.latencies, time.Since(t0))
				bw.requests++
				if err != nil {
					bw.failedReq++
					bw.failures[errClass(err)]++
					failed.Add(n)
					continue
				}
				for _, r := range res.Receipts {
					bw.acks = append(bw.acks, ack{id: r.ID, leaf: r.LeafHash})
				}
				acked.Add(n)
			}
		})
	}

	done := make(chan struct{})
	var pwg sync.WaitGroup
	if tty || cfg.progress > 0 {
		pwg.Go(func() { showProgress(stderr, tty, cfg.progress, start, &acked, &failed, done) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(done)
	pwg.Wait()

	rep := &benchReport{
		URL: cfg.url, Concurrency: cfg.concurrency, Batch: cfg.batch, IDs: cfg.ids,
		Seconds: elapsed.Seconds(), Answers: answers.snapshot(), Failures: map[string]int64{},
		Interrupted: ctx.Err() != nil,
	}
	var lat []time.Duration
	var acks []ack
	for _, bw := range workers {
		lat = append(lat, bw.latencies...)
		acks = append(acks, bw.acks...)
		rep.Requests += bw.requests
		rep.RequestsFailed += bw.failedReq
		for k, v := range bw.failures {
			rep.Failures[k] += v
		}
	}
	rep.EventsAcked = int64(len(acks))
	rep.EventsSent = rep.EventsAcked + failed.Load()
	rep.EventsPerSec = float64(rep.EventsAcked) / elapsed.Seconds()
	rep.RequestsPerSec = float64(rep.Requests-rep.RequestsFailed) / elapsed.Seconds()
	rep.LatencyMs = latencies(lat)

	if cfg.check && len(acks) > 0 {
		if !cfg.jsonOut {
			fmt.Fprintf(stderr, "reading back %d acknowledged events...\n", len(acks))
		}
		rep.ReadBack = readBack(reqCtx, cl, acks, cfg.concurrency, cfg.timeout)
	}
	return rep, nil
}

// showProgress reports acknowledged events so far until done is closed: a
// single line rewritten in place on a terminal, else a line per interval.
func showProgress(w io.Writer, tty bool, every time.Duration, start time.Time, acked, failed *atomic.Int64, done <-chan struct{}) {
	if tty {
		every = 250 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastN, lastT := int64(0), start
	for {
		select {
		case <-done:
			if tty {
				fmt.Fprint(w, "\r\033[K")
			}
			return
		case now := <-tick.C:
			n := acked.Load()
			el := now.Sub(start).Seconds()
			rate := float64(n-lastN) / now.Sub(lastT).Seconds()
			lastN, lastT = n, now
			line := fmt.Sprintf("%6.1fs  %10d events acked  %9.0f events/s (now %.0f/s)  %d failed",
				el, n, float64(n)/el, rate, failed.Load())
			if tty {
				fmt.Fprint(w, "\r\033[K"+line)
			} else {
				fmt.Fprintln(w, line)
			}
		}
	}
}

func latencies(d []time.Duration) latencyReport {
	if len(d) == 0 {
		return latencyReport{}
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	pct := func(p float64) float64 { return ms(d[min(int(p*float64(len(d))), len(d)-1)]) }
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return latencyReport{Mean: ms(sum / time.Duration(len(d))), P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: ms(d[len(d)-1])}
}

// readBack gets every acknowledged record, concurrently, and checks that
// its bytes hash to the leaf hash in its receipt.
func readBack(ctx context.Context, cl *client.Client, acks []ack, concurrency int, timeout time.Duration) *readBackReport {
	start := time.Now()
	var next, found, missing, mismatched, errs atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(acks)) {
					return
				}
				a := acks[i]
				rctx, cancel := context.WithTimeout(ctx, timeout)
				_, leaf, err := cl.Get(rctx, a.id)
				cancel()
				switch {
				case errors.Is(err, trail.ErrNotFound):
					missing.Add(1)
				case errors.Is(err, client.ErrLeafHash):
					mismatched.Add(1)
				case err != nil:
					errs.Add(1)
				case leaf != a.leaf:
					mismatched.Add(1)
				default:
					found.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return &readBackReport{
		Checked: int64(len(acks)), Found: found.Load(), Missing: missing.Load(),
		Mismatched: mismatched.Load(), Errors: errs.Load(), Seconds: time.Since(start).Seconds(),
	}
}

// errClass names an error for the counts: the HTTP status of a server's
// answer, or the kind of transport failure.
func errClass(err error) string {
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		return strconv.Itoa(ce.Status)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "server closed idle connection"), strings.Contains(s, "use of closed network connection"):
		// The server closed a kept-alive connection as the request left
		// (shutting down, or at its idle timeout), and the transport
		// closed its end while writing.
		return "connection closed"
	case strings.Contains(s, "broken pipe"), strings.Contains(s, "connection reset by peer"):
		// The same, seen while writing the request; net/http does not
		// always wrap the errno.
		return "connection reset"
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return "error: " + s
}

func (r *benchReport) print(w io.Writer) {
	ids := "client ids"
	if !r.IDs {
		ids = "server ids"
	}
	fmt.Fprintf(w, "trail bench: %s, %d clients, batch %d, %s\n", r.URL, r.Concurrency, r.Batch, ids)
	if r.Interrupted {
		fmt.Fprintln(w, "  (interrupted)")
	}
	fmt.Fprintf(w, "  duration     %.2fs\n", r.Seconds)
	fmt.Fprintf(w, "  acked        %d events in %d requests\n", r.EventsAcked, r.Requests-r.RequestsFailed)
	fmt.Fprintf(w, "  throughput   %.0f events/s, %.0f requests/s\n", r.EventsPerSec, r.RequestsPerSec)
	l := r.LatencyMs
	fmt.Fprintf(w, "  latency      p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  mean %.2fms (per request, retries included)\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	fmt.Fprintf(w, "  answers      %s\n", countsString(r.Answers))
	if r.RequestsFailed > 0 {
		fmt.Fprintf(w, "  failed       %d requests (%d events): %s\n", r.RequestsFailed, r.EventsSent-r.EventsAcked, countsString(r.Failures))
	} else {
		fmt.Fprintf(w, "  failed       none\n")
	}
	if rb := r.ReadBack; rb != nil {
		fmt.Fprintf(w, "  read-back    %d of %d acknowledged events found and byte-checked in %.2fs; %d missing, %d differ, %d unreadable\n",
			rb.Found, rb.Checked, rb.Seconds, rb.Missing, rb.Mismatched, rb.Errors)
	}
}

// countsString formats counts as "201: 9000, 503: 12", largest first.
func countsString(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
