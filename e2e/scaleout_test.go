package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/deploy"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A producer pushes events through the Go SDK from several goroutines,
// retrying 503s (and gateway errors: every event has an id) with the same
// ids, and notes every 2xx receipt in its ledger.
type producer struct {
	t      *testing.T
	cl     *client.Client
	ledger *ledger
	stop   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	statuses map[int]int // answers by status, retries included
	failed   int         // pushes that ended without a 2xx
}

func startProducer(t *testing.T, url string, workers int) *producer {
	p := &producer{t: t, ledger: newLedger(), stop: make(chan struct{}), statuses: map[int]int{}}
	p.cl = client.New(url,
		client.WithRetries(30),
		client.WithBackoff(50*time.Millisecond, time.Second),
		client.WithObserver(func(a client.Attempt) {
			if a.Method == http.MethodPost {
				p.mu.Lock()
				p.statuses[a.Status]++
				p.mu.Unlock()
			}
		}))
	for w := range workers {
		p.wg.Add(1)
		go p.run(w)
	}
	t.Cleanup(p.Stop)
	return p
}

func (p *producer) run(worker int) {
	defer p.wg.Done()
	for k := 0; ; {
		select {
		case <-p.stop:
			return
		default:
		}
		// Half single events, half small batches.
		n := 1
		if rand.IntN(2) == 0 {
			n = 2 + rand.IntN(7)
		}
		events := make([]*trail.Event, n)
		for i := range events {
			events[i] = newEvent("e2e.scale", worker, k)
			k++
		}
		p.ledger.send(events)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		res, err := p.cl.Push(ctx, events...)
		cancel()
		if err == nil {
			p.ledger.ack(p.t, events, res.Receipts, time.Now())
			continue
		}
		var ce *client.Error
		if errors.As(err, &ce) && ce.Status >= 400 && ce.Status < 500 {
			p.t.Errorf("worker %d: push of %d events: %v", worker, n, err)
		}
		p.mu.Lock()
		p.failed++
		p.mu.Unlock()
	}
}

// Stop stops pushing and waits for the pushes in flight.
func (p *producer) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
}

// counts returns the answers by status and the failed pushes so far.
func (p *producer) counts() (map[int]int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[int]int, len(p.statuses))
	for k, v := range p.statuses {
		m[k] = v
	}
	return m, p.failed
}

// TestScaleOut runs two trail replicas on one MongoDB behind NGINX, with
// producers pushing through NGINX. It kills one replica with SIGKILL
// mid-stream and starts a new one at its address, which takes its log
// over once the lease has expired. Every acknowledged event must then be
// readable through NGINX, GET /logs must merge both logs, every log's
// seqs must be dense, and trail verify must pass on every log.
func TestScaleOut(t *testing.T) {
	uri, db := MustOpenDB(t)
	nginx := nginxBinary(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "trail.key")
	const ttl = 2 * time.Second
	args := func(addr string) []string { return serveArgs(addr, uri, key, "--lease-ttl", ttl.String()) }

	// One after the other: the first creates the shared key file.
	a := startTrail(t, "trail-a", dir, args("127.0.0.1:0")...)
	b := startTrail(t, "trail-b", dir, args("127.0.0.1:0")...)
	logA, logB := ownedLog(t, db, a.Pid()).ID, ownedLog(t, db, b.Pid()).ID
	if logA == logB {
		t.Fatalf("both replicas write log %s", logA)
	}
	ngx, err := deploy.StartNginx(nginx, filepath.Join(dir, "nginx"), "127.0.0.1:0", a.Addr, b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ngx.Stop() })
	front := "http://" + ngx.Addr

	start := time.Now()
	prod := startProducer(t, front, 8)
	waitFor(t, 60*time.Second, "both replicas acknowledge 100 events", func() bool {
		_, _, byLog := prod.ledger.counts()
		return byLog[logA] >= 100 && byLog[logB] >= 100
	})
	sentBefore, ackedBefore, _ := prod.ledger.counts()

	// Crash A mid-stream.
	killed := time.Now()
	a.Kill()
	t.Logf("killed replica A (pid %d, log %s) after %v: %d events sent, %d acknowledged", a.Pid(), logA, killed.Sub(start).Round(time.Millisecond), sentBefore, ackedBefore)

	// Its lease expires within the TTL; then a new replica at its address
	// takes the log over (or, if A died mid-batch with part of the batch
	// stored, seals it and starts a log of its own).
	var expired time.Time
	waitFor(t, 3*ttl, "the lease of the killed replica expires", func() bool {
		for _, d := range readLogs(t, db) {
			if d.ID == logA && time.Now().After(d.Expires) {
				expired = time.Now()
				return true
			}
		}
		return false
	})
	c := startTrail(t, "trail-c", dir, args(a.Addr)...)
	listening := time.Now()
	var took logDoc
	for _, d := range readLogs(t, db) {
		if d.ID == logA {
			took = d
		}
	}
	switch {
	case strings.HasPrefix(took.Owner, ownerPrefix(c.Pid())):
		t.Logf("replica C (pid %d) took over %s at size %d", c.Pid(), logA, took.Committed)
	case took.Sealed:
		t.Logf("replica C found %s sealed at size %d (A died mid-batch) and writes %s", logA, took.Committed, ownedLog(t, db, c.Pid()).ID)
	default:
		t.Fatalf("replica C (pid %d) did not take over %s: %+v", c.Pid(), logA, took)
	}

	// C must take writes through NGINX, at the new end of A's log.
	logC := ownedLog(t, db, c.Pid()).ID
	from := int64(0)
	if logC == logA {
		from = took.Committed
	}
	waitFor(t, 60*time.Second, "replica C acknowledges 100 events", func() bool {
		n, _ := prod.ledger.since(logC, from)
		return n >= 100
	})
	_, firstC := prod.ledger.since(logC, from)
	prod.Stop()
	sent, acked, byLog := prod.ledger.counts()
	statuses, failed := prod.counts()
	t.Logf("figures: lease expired %v after the kill; C listening %v after that (%v after the kill); first event stored by C acknowledged %v after the kill",
		expired.Sub(killed).Round(time.Millisecond), listening.Sub(expired).Round(time.Millisecond),
		listening.Sub(killed).Round(time.Millisecond), firstC.Sub(killed).Round(time.Millisecond))
	t.Logf("figures: %d events sent in %v, %d acknowledged (%v by log), %d pushes failed after all retries; POST answers by status: %v",
		sent, time.Since(start).Round(time.Millisecond), acked, byLog, failed, statuses)

	// Everything, read back through NGINX.
	cl := client.New(front)
	checked := time.Now()
	logs := checkStored(t, cl, db, prod.ledger)
	t.Logf("read back in %v", time.Since(checked).Round(time.Millisecond))
	checked = time.Now()
	for _, d := range logs {
		code, out := verifyLog(t, front, key, d.ID)
		if code != 0 {
			t.Errorf("trail verify --log %s: exit %d, want 0; output:\n%s", d.ID, code, out)
		}
	}
	var sizes []string
	for _, d := range logs {
		sizes = append(sizes, fmt.Sprintf("%s=%d", d.ID, d.Committed))
	}
	t.Logf("logs: %s; verified in %v", strings.Join(sizes, " "), time.Since(checked).Round(time.Millisecond))

	// A graceful stop signs a final checkpoint of each live log and
	// releases its lease, so that a successor need not wait for the TTL.
	for _, p := range []*trailProc{b, c} {
		p.Stop()
		if p.err != nil {
			t.Errorf("%s did not stop cleanly: %v", p.name, p.err)
		}
	}
	for _, d := range readLogs(t, db) {
		if d.Sealed {
			continue
		}
		if time.Now().Before(d.Expires) {
			t.Errorf("log %s: lease held by %s until %v after its replica stopped", d.ID, d.Owner, d.Expires)
		}
		if size := latestCheckpoint(t, db, d.ID); size != d.Committed {
			t.Errorf("log %s: latest checkpoint has size %d after a graceful stop, want its committed size %d", d.ID, size, d.Committed)
		}
	}
}

// latestCheckpoint returns the size of the latest stored checkpoint of
// log, from the checkpoints collection.
func latestCheckpoint(t *testing.T, db *mongo.Database, log string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var doc struct {
		Size int64 `bson:"size"`
	}
	err := db.Collection("checkpoints").FindOne(ctx, bson.D{{Key: "log", Value: log}},
		options.FindOne().SetSort(bson.D{{Key: "size", Value: -1}})).Decode(&doc)
	if err != nil {
		t.Fatalf("latest checkpoint of %s: %v", log, err)
	}
	return doc.Size
}
