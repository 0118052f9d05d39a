// Package metrics collects trail's Prometheus metrics (docs/OPERATIONS.md)
// in a registry of its own, not the process-wide default, so that two
// nodes in one process (tests) never share counters. A *Metrics is handed
// to the adapters as the small observer interfaces they own
// (httpapi.Observer, ingest.Observer), so that they never import
// Prometheus; only internal/node and cmd/trail see this package.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every trail metric and the registry they are exposed from.
// Its methods are safe for concurrent use and never block.
type Metrics struct {
	reg *prometheus.Registry

	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	appended     *prometheus.CounterVec
	logRecords   *prometheus.GaugeVec
	batch        prometheus.Histogram
	commit       prometheus.Histogram
	storeErrors  *prometheus.CounterVec
	authFailures prometheus.Counter
	rateLimited  *prometheus.CounterVec
	tail         prometheus.Gauge
	checkpoints  *checkpoints
}

// New returns metrics registered in a fresh registry, with the Go runtime
// and process collectors beside trail's own.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trail_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "trail_http_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trail_events_appended_total",
			Help: "Records durably appended, by log (replays are not counted).",
		}, []string{"log"}),
		logRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "trail_log_records",
			Help: "Records in the log this process writes, after its latest commit.",
		}, []string{"log"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "trail_ingest_batch_events",
			Help:    "New records per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 … 16384
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "trail_ingest_commit_duration_seconds",
			Help:    "Duration of one group commit's durable store append (the fsync, or MongoDB's majority journaled write).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trail_store_errors_total",
			Help: "Store calls that failed (not counting not-found answers or callers that went away), by operation.",
		}, []string{"op"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trail_auth_failures_total",
			Help: "Requests refused with 401: no, malformed, unknown, expired or revoked credentials.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trail_rate_limited_total",
			Help: "Requests refused with 429, by policy: key (a key's event rate) or auth (a client's failed authentications).",
		}, []string{"policy"}),
		tail: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trail_tail_subscribers",
			Help: "Live-tail subscribers connected now.",
		}),
		checkpoints: newCheckpoints(time.Now),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.latency, m.appended, m.logRecords, m.batch, m.commit,
		m.storeErrors, m.authFailures, m.rateLimited, m.tail, m.checkpoints,
	)
	return m
}

// Registry returns the registry the metrics are in, for a caller that adds
// its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text or OpenMetrics format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// WatchQueue exposes queued (events admitted and not yet committed) as the
// gauge trail_ingest_queued_events. Call it once, when the ingester exists.
func (m *Metrics) WatchQueue(queued func() int64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "trail_ingest_queued_events",
		Help: "Events admitted to the group-commit queue and not yet committed (the ingest queue depth).",
	}, func() float64 { return float64(queued()) }))
}

// WatchCompression exposes failures (compressions of a sealed segment
// that failed) as the counter trail_segment_compress_failures_total. Call
// it once, for a store that compresses its segments.
func (m *Metrics) WatchCompression(failures func() uint64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "trail_segment_compress_failures_total",
		Help: "Sealed segments of the embedded store that could not be compressed; each stays as written and is read as before (see the server's log).",
	}, func() float64 { return float64(failures()) }))
}

// Request counts one answered HTTP request. route is the matched pattern
// without its method ("/logs/{id}"), never the raw path, so that the
// label's values stay few; "" (answered before routing: an unclean path,
// CONNECT) is labelled "none".
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	if route == "" {
		route = "none"
	}
	method = knownMethod(method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// knownMethod keeps the method label bounded: any other method (a client
// may send any token) is "other".
func knownMethod(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return m
	}
	return "other"
}

// AuthFailed counts a request refused with 401.
func (m *Metrics) AuthFailed() { m.authFailures.Inc() }

// RateLimited counts a request refused with 429 under policy ("key" or
// "auth").
func (m *Metrics) RateLimited(policy string) { m.rateLimited.WithLabelValues(policy).Inc() }

// AddTailSubscribers adds delta (+1 on connect, -1 on disconnect) to the
// live-tail subscriber gauge.
func (m *Metrics) AddTailSubscribers(delta int) { m.tail.Add(float64(delta)) }

// Committed records one group commit of log: events new records, made
// durable in d, after which the log holds size records.
func (m *Metrics) Committed(log string, events int, size int64, d time.Duration) {
	m.appended.WithLabelValues(log).Add(float64(events))
	m.logRecords.WithLabelValues(log).Set(float64(size))
	m.batch.Observe(float64(events))
	m.commit.Observe(d.Seconds())
}

// StoreFailed counts a failed store call of operation op.
func (m *Metrics) StoreFailed(op string) { m.storeErrors.WithLabelValues(op).Inc() }

// Checkpointed records that a checkpoint of log at size was signed and
// stored at.
func (m *Metrics) Checkpointed(log string, size int64, at time.Time) {
	m.checkpoints.set(log, size, at)
}
