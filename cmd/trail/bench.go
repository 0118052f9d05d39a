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
failures, and the CPU it spent itself (cores, and CPU-µs per event): it
shares the machine with the server it measures. With --server-pid (Linux)
it reports the server's CPU as well. Events are about 600 bytes. Last, it
reads back every acknowledged id (GET /logs/{id}) and checks the bytes hash
to the receipt's leaf hash; it exits non-zero if any acknowledged event is
missing or differs. Send load only to a server you run.

With --http-client raw (the default) each client keeps one connection and
writes every request as pre-built HTTP/1.1 bytes, and reads the answer
itself: Go's HTTP client costs about 50 CPU-µs per request, which the server
would miss at tens of thousands of requests/s. It retries as the std path
does. For an https:// URL, or one with user:password@, it uses the std
path (net/http) instead; the report names the path used.
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
	serverPID   int    // 0: the server's CPU is not measured
	httpClient  string // "raw" or "std"
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
	fs.IntVar(&cfg.dataBytes, "data-bytes", 280, "approximate `size` of each event's data object (280: events of about 600 bytes)")
	fs.BoolVar(&cfg.check, "check", true, "read back every acknowledged event at the end")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the report as JSON, for scripts")
	fs.IntVar(&cfg.serverPID, "server-pid", 0, "`pid` of the server, on the same Linux machine, to report its CPU per event as well (from /proc)")
	fs.StringVar(&cfg.httpClient, "http-client", "raw", "how requests are sent: `raw` (pre-built HTTP/1.1 on one connection per client) or std (Go's net/http, through the SDK)")
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
	if cfg.events < 0 || cfg.duration < 0 || cfg.dataBytes < 0 || cfg.serverPID < 0 || (cfg.events == 0 && cfg.duration == 0) {
		return usageError{errors.New("bench: give a positive --events, or a --duration")}
	}
	if cfg.httpClient != "raw" && cfg.httpClient != "std" {
		return usageError{fmt.Errorf("bench: --http-client must be raw or std, not %q", cfg.httpClient)}
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
	answers   map[string]int64 // the raw path's attempts, by status or error
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

// bench runs the load, then reads back what was acknowledged.
func bench(ctx context.Context, cfg *benchConfig, stderr io.Writer, tty bool) (*benchReport, error) {
	var answers counter
	cl, err := benchClient(ctx, cfg, &answers)
	if err != nil {
		return nil, err
	}
	load := newBenchLoad(ctx, cfg, cl)
	if cfg.httpClient == "raw" {
		if load.raw, err = newRawTarget(&cfg.clientFlags); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	meter, err := startCPUMeter(cfg.serverPID)
	if err != nil {
		return nil, err
	}
	workers, elapsed := load.drive(ctx, stderr, tty)
	gen, server, err := meter.stop()
	if err != nil {
		return nil, err
	}
	rep, acks := load.report(workers, elapsed, answers.snapshot(), ctx.Err() != nil)
	if gen >= 0 {
		rep.GeneratorCPU = newCPUReport(0, gen, elapsed, rep.EventsAcked)
	}
	if cfg.serverPID > 0 {
		rep.ServerCPU = newCPUReport(cfg.serverPID, server, elapsed, rep.EventsAcked)
	}
	if cfg.check && len(acks) > 0 {
		if !cfg.jsonOut {
			fmt.Fprintf(stderr, "reading back %d acknowledged events...\n", len(acks))
		}
		rep.ReadBack = readBack(load.reqCtx, cl, acks, cfg.concurrency, cfg.timeout)
	}
	return rep, nil
}

// benchClient returns a client that counts every POST attempt's answer in
// answers, once the server answers its health check.
func benchClient(ctx context.Context, cfg *benchConfig, answers *counter) (*client.Client, error) {
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
	return cl, nil
}

// benchLoad is the load phase, shared by its workers.
type benchLoad struct {
	cfg      *benchConfig
	cl       *client.Client
	raw      *rawTarget // nil: requests go through cl (net/http)
	pad      string
	tenant   []byte // JSON strings
	action   []byte
	start    time.Time
	deadline time.Time // zero: none
	// reqCtx outlives an interrupt: requests in flight finish, so that
	// every acknowledged event is counted and read back.
	reqCtx                context.Context
	issued, acked, failed atomic.Int64
}

func newBenchLoad(ctx context.Context, cfg *benchConfig, cl *client.Client) *benchLoad {
	l := &benchLoad{
		cfg: cfg, cl: cl, pad: strings.Repeat("x", max(cfg.dataBytes-30, 0)),
		start: time.Now(), reqCtx: context.WithoutCancel(ctx),
	}
	l.tenant, _ = json.Marshal(cfg.tenant)
	l.action, _ = json.Marshal(cfg.action)
	if cfg.duration > 0 {
		l.deadline = l.start.Add(cfg.duration)
	}
	return l
}

// drive runs the workers, with progress on stderr, until the events are
// sent, the duration is over or ctx is cancelled.
func (l *benchLoad) drive(ctx context.Context, stderr io.Writer, tty bool) ([]*benchWorker, time.Duration) {
	workers := make([]*benchWorker, l.cfg.concurrency)
	var wg sync.WaitGroup
	for w := range workers {
		bw := &benchWorker{failures: map[string]int64{}, answers: map[string]int64{}}
		workers[w] = bw
		wg.Go(func() { l.work(ctx, w, bw) })
	}
	done := make(chan struct{})
	var pwg sync.WaitGroup
	if tty || l.cfg.progress > 0 {
		pwg.Go(func() { showProgress(stderr, tty, l.cfg.progress, l.start, &l.acked, &l.failed, done) })
	}
	wg.Wait()
	elapsed := time.Since(l.start)
	close(done)
	pwg.Wait()
	return workers, elapsed
}

// work is one client: it sends a request, waits for the answer, and again.
// It reuses its buffers from one request to the next.
func (l *benchLoad) work(ctx context.Context, w int, bw *benchWorker) {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(l.start.UnixNano())))
	var body, answer []byte
	var ids []string
	var rc *rawConn
	if l.raw != nil {
		rc = &rawConn{t: l.raw}
		defer rc.close()
	}
	for ctx.Err() == nil && (l.deadline.IsZero() || time.Now().Before(l.deadline)) {
		first, n, ok := l.claim()
		if !ok {
			return
		}
		body, ids = l.encode(body[:0], ids[:0], rng, first, n)
		answer = l.push(bw, rc, body, ids, answer[:0])
	}
}

// claim takes the numbers of the next request's events, if any are left.
func (l *benchLoad) claim() (first, n int64, ok bool) {
	n = int64(l.cfg.batch)
	first = l.issued.Add(n) - n
	if l.cfg.events > 0 {
		if first >= l.cfg.events {
			return 0, 0, false
		}
		n = min(n, l.cfg.events-first)
	}
	return first, n, true
}

// push sends one request of the events with ids, on rc unless it is nil,
// and records its outcome in bw. It returns the answer's buffer, for the
// next request.
func (l *benchLoad) push(bw *benchWorker, rc *rawConn, body []byte, ids []string, answer []byte) []byte {
	n := int64(len(ids))
	t0 := time.Now()
	var err error
	if rc != nil {
		answer, err = l.postRaw(rc, bw, body, answer)
	} else {
		pctx, cancel := context.WithTimeout(l.reqCtx, l.cfg.timeout)
		answer, _, err = l.cl.PushEncoded(pctx, answer, body, l.cfg.ids)
		cancel()
	}
	bw.latencies = append(bw.latencies, time.Since(t0))
	bw.requests++
	if err == nil {
		before := len(bw.acks)
		if bw.acks, err = scanReceipts(bw.acks, answer, ids); err != nil {
			bw.acks = bw.acks[:before]
			err = fmt.Errorf("bench: POST /logs: %w", err)
		}
	}
	if err != nil {
		bw.failedReq++
		bw.failures[errClass(err)]++
		l.failed.Add(n)
		return answer
	}
	l.acked.Add(n)
	return answer
}

// report merges the workers' results, and returns the acknowledged events.
func (l *benchLoad) report(workers []*benchWorker, elapsed time.Duration, answers map[string]int64, interrupted bool) (*benchReport, []ack) {
	cfg := l.cfg
	rep := &benchReport{
		URL: cfg.url, Concurrency: cfg.concurrency, Batch: cfg.batch, IDs: cfg.ids,
		Seconds: elapsed.Seconds(), Answers: answers, Failures: map[string]int64{},
		Interrupted: interrupted, HTTPClient: "std",
	}
	if l.raw != nil {
		rep.HTTPClient = "raw"
	}
	var lat []time.Duration
	var acks []ack
	for _, bw := range workers {
		lat = append(lat, bw.latencies...)
		acks = append(acks, bw.acks...)
		rep.Requests += bw.requests
		rep.RequestsFailed += bw.failedReq
		for k, v := range bw.answers {
			answers[k] += v
		}
		for k, v := range bw.failures {
			rep.Failures[k] += v
		}
	}
	rep.EventsAcked = int64(len(acks))
	rep.EventsSent = rep.EventsAcked + l.failed.Load()
	rep.EventsPerSec = float64(rep.EventsAcked) / elapsed.Seconds()
	rep.RequestsPerSec = float64(rep.Requests-rep.RequestsFailed) / elapsed.Seconds()
	rep.LatencyMs = latencies(lat)
	return rep, acks
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
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
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
