package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// benchReport is bench's result; --json prints it as is.
type benchReport struct {
	URL            string           `json:"url"`
	Concurrency    int              `json:"concurrency"`
	Batch          int              `json:"batch"`
	IDs            bool             `json:"ids"`
	HTTPClient     string           `json:"http_client"` // "raw" or "std" (--http-client; std for https)
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
	// GeneratorCPU is trail bench's own CPU over the load phase: it shares
	// the machine with the server it measures. ServerCPU is the server's,
	// with --server-pid.
	GeneratorCPU *cpuReport      `json:"generator_cpu,omitempty"`
	ServerCPU    *cpuReport      `json:"server_cpu,omitempty"`
	ReadBack     *readBackReport `json:"read_back,omitempty"`
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

// latencies summarises request latencies in milliseconds; it sorts d.
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

func (r *benchReport) print(w io.Writer) {
	ids := "client ids"
	if !r.IDs {
		ids = "server ids"
	}
	fmt.Fprintf(w, "trail bench: %s, %d clients, batch %d, %s, %s HTTP client\n", r.URL, r.Concurrency, r.Batch, ids, r.HTTPClient)
	if r.Interrupted {
		fmt.Fprintln(w, "  (interrupted)")
	}
	fmt.Fprintf(w, "  duration     %.2fs\n", r.Seconds)
	fmt.Fprintf(w, "  acked        %d events in %d requests\n", r.EventsAcked, r.Requests-r.RequestsFailed)
	fmt.Fprintf(w, "  throughput   %.0f events/s, %.0f requests/s\n", r.EventsPerSec, r.RequestsPerSec)
	if c := r.GeneratorCPU; c != nil {
		fmt.Fprintf(w, "  generator    %.2f cores, %.1f CPU-µs/event (trail bench itself, load phase)\n", c.Cores, c.USPerEvent)
	}
	if c := r.ServerCPU; c != nil {
		fmt.Fprintf(w, "  server       %.2f cores, %.1f CPU-µs/event (pid %d)\n", c.Cores, c.USPerEvent, c.PID)
	}
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
