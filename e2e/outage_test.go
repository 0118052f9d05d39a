package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
)

// An answer is one POST /logs exchange as a producer saw it.
type answer struct {
	worker     int
	sent, got  time.Time
	status     int    // 0: no answer
	retryAfter string // the Retry-After header
	body       []byte // of a 2xx answer
	err        error  // transport error
}

// A rawProducer posts batches with plain HTTP, so that every answer is
// seen, and retries a refused batch with the same ids and content until it
// is acknowledged or the producer stops.
type rawProducer struct {
	t      *testing.T
	url    string
	action string
	hc     *http.Client
	ledger *ledger
	stop   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	answers []answer
}

// startRawProducer starts workers that post events with the action to
// url, and note what they send in l.
func startRawProducer(t *testing.T, url, action string, workers int, l *ledger) *rawProducer {
	p := &rawProducer{
		t: t, url: url, action: action, ledger: l, stop: make(chan struct{}),
		// A request that gets no answer in 30s fails the test: the
		// service must answer, if only with 503, in bounded time.
		hc: &http.Client{Timeout: 30 * time.Second},
	}
	for w := range workers {
		p.wg.Add(1)
		go p.run(w)
	}
	t.Cleanup(p.Stop)
	return p
}

func (p *rawProducer) stopped() bool { return closed(p.stop) }

func (p *rawProducer) run(worker int) {
	defer p.wg.Done()
	for k := 0; !p.stopped(); {
		events := make([]*trail.Event, 1+k%5)
		for i := range events {
			events[i] = newEvent(p.action, worker, k)
			k++
		}
		body, err := json.Marshal(events)
		if err != nil {
			p.t.Error(err)
			return
		}
		p.ledger.send(events)
		for !p.stopped() {
			a := p.post(worker, body)
			p.mu.Lock()
			p.answers = append(p.answers, a)
			p.mu.Unlock()
			if a.status == http.StatusCreated || a.status == http.StatusOK {
				var res struct {
					Receipts []trail.Receipt `json:"receipts"`
				}
				if err := json.Unmarshal(a.body, &res); err != nil {
					p.t.Errorf("POST /logs: %d answer: %v", a.status, err)
				}
				p.ledger.ack(p.t, events, res.Receipts, a.got)
				break
			}
			if a.status != http.StatusServiceUnavailable && a.err == nil {
				break // reported by the test
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// post sends one batch.
func (p *rawProducer) post(worker int, body []byte) answer {
	a := answer{worker: worker, sent: time.Now()}
	resp, err := p.hc.Post(p.url+"/logs", "application/json", bytes.NewReader(body))
	a.got = time.Now()
	if err != nil {
		a.err = err
		return a
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	if err != nil {
		a.err = err
	}
	if a.status/100 == 2 {
		a.body = b
	} else if a.status != http.StatusServiceUnavailable {
		p.t.Errorf("POST /logs: got %d %s, want 201 or 503", a.status, b)
	}
	return a
}

// Stop stops posting and waits for the requests in flight.
func (p *rawProducer) Stop() {
	if !p.stopped() {
		close(p.stop)
	}
	p.wg.Wait()
}

// snapshot returns the answers so far.
func (p *rawProducer) snapshot() []answer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]answer(nil), p.answers...)
}

// waitEvery waits until each of the workers has an answer that match
// accepts, and returns when they all had.
func (p *rawProducer) waitEvery(t *testing.T, workers int, what string, match func(answer) bool) time.Time {
	t.Helper()
	waitFor(t, 60*time.Second, "every producer gets "+what, func() bool {
		seen := map[int]bool{}
		for _, a := range p.snapshot() {
			if match(a) {
				seen[a.worker] = true
			}
		}
		return len(seen) == workers
	})
	return time.Now()
}

// waitReadyz waits until GET url/readyz answers status.
func waitReadyz(t *testing.T, url string, status int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("GET /readyz says %d", status), func() bool {
		got, _ := get(t, url+"/readyz")
		return got == status
	})
}

// TestMongoOutage kills the MongoDB server (FerretDB) under a trail
// server while producers write, and starts it again on the same port and
// data. Writes must get 503 with Retry-After, in bounded time, while it is
// away; no 2xx may be sent for anything not stored; and writes must
// succeed again by themselves, without restarting trail.
func TestMongoOutage(t *testing.T) {
	bin := ferretBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "ferretdb")
	fdb := startFerret(t, "ferretdb-1", bin, data, "127.0.0.1:0")
	uri := withDB(t, fdb.URI, "e2e_outage")
	db := MustConnect(t, uri)
	key := filepath.Join(dir, "trail.key")
	// A lease shorter than the outage: it lapses, and the replica must
	// renew it and go on writing its log when MongoDB returns.
	srv := startTrail(t, "trail", dir, serveArgs("127.0.0.1:0", uri, key, "--lease-ttl", "3s")...)
	log := ownedLog(t, db, srv.Pid()).ID

	const workers = 4
	prod := startRawProducer(t, srv.URL, "e2e.outage", workers, newLedger())
	waitFor(t, 60*time.Second, "100 events acknowledged", func() bool {
		_, acked, _ := prod.ledger.counts()
		return acked >= 100
	})

	killed := time.Now()
	fdb.Kill()
	refusedAll := prod.waitEvery(t, workers, "a 503 after the kill", func(a answer) bool {
		return a.sent.After(killed) && a.status == http.StatusServiceUnavailable
	})
	waitReadyz(t, srv.URL, http.StatusServiceUnavailable)
	// Stay away past the lease's TTL.
	time.Sleep(time.Until(killed.Add(8 * time.Second)))

	startFerret(t, "ferretdb-2", bin, data, fdb.Addr) // same port and data; stopped at cleanup
	restarted := time.Now()
	recovered := prod.waitEvery(t, workers, "a 2xx after the restart", func(a answer) bool {
		return a.sent.After(restarted) && a.status/100 == 2
	})
	waitReadyz(t, srv.URL, http.StatusOK)
	time.Sleep(500 * time.Millisecond)
	prod.Stop()

	// Every answer: 2xx or 503 with Retry-After, in bounded time; no 2xx
	// for a request sent while MongoDB was away.
	answers := prod.snapshot()
	sort.Slice(answers, func(i, j int) bool { return answers[i].got.Before(answers[j].got) })
	var (
		maxWait, maxOutage  time.Duration
		first503, first2xx  time.Time
		refused, noRetryAft int
	)
	for _, a := range answers {
		d := a.got.Sub(a.sent)
		maxWait = max(maxWait, d)
		if a.err != nil {
			t.Errorf("POST /logs sent %v after the kill: no answer after %v: %v", a.sent.Sub(killed).Round(time.Millisecond), d.Round(time.Millisecond), a.err)
			continue
		}
		if a.got.After(killed) && a.sent.Before(restarted) {
			maxOutage = max(maxOutage, d)
		}
		switch {
		case a.status == http.StatusServiceUnavailable:
			refused++
			if a.retryAfter == "" {
				noRetryAft++
			}
			if first503.IsZero() && a.got.After(killed) {
				first503 = a.got
			}
		case a.status/100 == 2:
			if a.sent.After(killed) && a.got.Before(restarted) {
				t.Errorf("POST /logs sent %v after the kill got %d before MongoDB was back", a.sent.Sub(killed).Round(time.Millisecond), a.status)
			}
			if first2xx.IsZero() && a.sent.After(restarted) {
				first2xx = a.got
			}
		}
	}
	if noRetryAft > 0 {
		t.Errorf("%d of %d 503 answers had no Retry-After", noRetryAft, refused)
	}
	sent, acked, _ := prod.ledger.counts()
	t.Logf("figures: %d requests, %d answered 503; first 503 %v after the kill, every producer refused after %v; slowest answer while MongoDB was away %v (slowest overall %v)",
		len(answers), refused, first503.Sub(killed).Round(time.Millisecond), refusedAll.Sub(killed).Round(time.Millisecond),
		maxOutage.Round(time.Millisecond), maxWait.Round(time.Millisecond))
	t.Logf("figures: MongoDB away %v; first 2xx %v after the restart, every producer acknowledged %v after it; 503s for %v in all; %d events sent, %d acknowledged",
		restarted.Sub(killed).Round(time.Millisecond), first2xx.Sub(restarted).Round(time.Millisecond),
		recovered.Sub(restarted).Round(time.Millisecond), first2xx.Sub(first503).Round(time.Millisecond), sent, acked)

	// Everything acknowledged is stored, in the same log, densely.
	logs := checkStored(t, client.New(srv.URL), db, prod.ledger)
	if len(logs) != 1 || logs[0].ID != log {
		t.Errorf("logs after the outage: %+v, want only %s (the replica keeps its log)", logs, log)
	}
	if code, out := verifyLog(t, srv.URL, key, log); code != 0 {
		t.Errorf("trail verify --log %s: exit %d, want 0; output:\n%s", log, code, out)
	}
	srv.Stop()
	if srv.err != nil {
		t.Errorf("trail serve did not stop cleanly after the outage: %v", srv.err)
	}
	// A replica that stopped cleanly settled every batch of the logs it
	// owned: nothing stays pending for a takeover that may never come.
	for _, d := range readLogs(t, db) {
		if p := d.Pending; p != nil {
			t.Errorf("log %s after the replica stopped: got a pending batch (first %d, n %d), want none", d.ID, p.First, p.N)
		}
	}
}
