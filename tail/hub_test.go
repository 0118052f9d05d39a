package tail

import (
	"fmt"
	"testing"

	"github.com/trail-audit/trail"
)

// BenchmarkPublish measures what one commit of 100 entries costs the
// ingester's writer with 0, 1 and 100 subscribers: Publish alone, without
// the subscribers' own reading (BenchmarkIngestSubscribers has that).
func BenchmarkPublish(b *testing.B) {
	entries := make([]*trail.Entry, 100)
	for i := range entries {
		entries[i] = &trail.Entry{}
	}
	for _, n := range []int{0, 1, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			h := NewHub(Config{QueueBytes: 1 << 40})
			subs := make([]*sub, n)
			for i := range subs {
				s, err := h.subscribe()
				if err != nil {
					b.Fatal(err)
				}
				subs[i] = s
			}
			i := 0
			for b.Loop() {
				h.Publish(entries)
				if i++; i%100 == 0 { // as readers would, off the clock in spirit
					for _, s := range subs {
						s.take(1 << 40)
						select {
						case <-s.wake:
						default:
						}
					}
				}
			}
		})
	}
}
