package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// checkpoints collects the latest stored checkpoint of each log this
// process signed: its size, when it was stored and its age at scrape time.
// Age is computed at each scrape, which a plain gauge cannot do.
type checkpoints struct {
	now func() time.Time

	size, stamp, age *prometheus.Desc

	mu     sync.Mutex
	latest map[string]signed
}

type signed struct {
	size int64
	at   time.Time
}

func newCheckpoints(now func() time.Time) *checkpoints {
	return &checkpoints{
		now: now,
		size: prometheus.NewDesc("trail_checkpoint_tree_size",
			"Records covered by the latest checkpoint this process signed and stored, by log.", []string{"log"}, nil),
		stamp: prometheus.NewDesc("trail_checkpoint_timestamp_seconds",
			"Unix time at which the latest checkpoint was stored, by log.", []string{"log"}, nil),
		age: prometheus.NewDesc("trail_checkpoint_age_seconds",
			"Seconds since the latest checkpoint was stored, by log.", []string{"log"}, nil),
		latest: map[string]signed{},
	}
}

func (c *checkpoints) set(log string, size int64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.latest[log]; ok && prev.size > size {
		return // a late store of an older checkpoint
	}
	c.latest[log] = signed{size, at}
}

// Describe implements prometheus.Collector.
func (c *checkpoints) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.stamp
	ch <- c.age
}

// Collect implements prometheus.Collector.
func (c *checkpoints) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for log, s := range c.latest {
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(s.size), log)
		ch <- prometheus.MustNewConstMetric(c.stamp, prometheus.GaugeValue, float64(s.at.UnixNano())/1e9, log)
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, now.Sub(s.at).Seconds(), log)
	}
}
