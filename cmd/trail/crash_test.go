package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/testserver"
	"golang.org/x/mod/sumdb/tlog"
)

// load drives concurrent ingest against a server and remembers every event
// it sent and every receipt it got.
type load struct {
	mu       sync.Mutex
	events   map[string]*trail.Event  // every event sent, by id
	acked    map[string]trail.Receipt // receipts of 2xx answers, by id
	unacked  []*trail.Event           // events of requests that failed
	failures map[string]int           // failed requests by cause
	nAcked   atomic.Int64
	statuses map[int]int // HTTP answers by status
	// signaled is when the server was sent a signal (unix nanos); acks
	// received after it count in lateAcks.
	signaled atomic.Int64
	lateAcks atomic.Int64
}

func newLoad() *load {
	return &load{events: map[string]*trail.Event{}, acked: map[string]trail.Receipt{}, failures: map[string]int{}, statuses: map[int]int{}}
}

// run starts workers that push until stop is closed, mixing single events
// and batches of 50, with client ids and no retries (so that each answer is
// seen as it is); it returns a function that waits for them. opts add to
// the client's options (a CA, a transport).
func (l *load) run(url string, workers int, stop <-chan struct{}, opts ...client.Option) (wait func()) {
	c := client.New(url, append([]client.Option{client.WithRetries(0), client.WithObserver(func(a client.Attempt) {
		if a.Err == nil && a.Method == http.MethodPost {
			l.mu.Lock()
			l.statuses[a.Status]++
			l.mu.Unlock()
		}
	})}, opts...)...)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := 1
				if rng.IntN(2) == 0 {
					n = 50
				}
				events := make([]*trail.Event, n)
				for j := range events {
					events[j] = &trail.Event{
						ID:     client.NewID(),
						Actor:  trail.Actor{ID: "worker-" + strconv.Itoa(w)},
						Action: "crash.test",
						Source: trail.Source{Service: "crash-test"},
						Data:   json.RawMessage(fmt.Sprintf(`{"worker":%d,"i":%d,"j":%d}`, w, i, j)),
					}
				}
				l.mu.Lock()
				for _, e := range events {
					l.events[e.ID] = e
				}
				l.mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				res, err := c.Push(ctx, events...)
				cancel()
				l.mu.Lock()
				if err != nil {
					l.unacked = append(l.unacked, events...)
					l.failures[errClass(err)]++
				} else {
					for _, r := range res.Receipts {
						l.acked[r.ID] = r
					}
					l.nAcked.Add(int64(len(res.Receipts)))
					if sig := l.signaled.Load(); sig != 0 && time.Now().UnixNano() > sig {
						l.lateAcks.Add(1)
					}
				}
				l.mu.Unlock()
				if err != nil {
					// The server is gone (killed or stopping): keep
					// trying until told to stop, without spinning.
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	return wg.Wait
}

// waitAcked waits until at least n events are acknowledged in all.
func (l *load) waitAcked(t *testing.T, n int64) {
	t.Helper()
	for range 6000 {
		if l.nAcked.Load() >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("only %d events acknowledged, want %d", l.nAcked.Load(), n)
}

// checkAcked reads back every acknowledged event: its bytes must hash to
// the leaf hash of its receipt (SHA-256(0x00 || bytes), tlog.RecordHash),
// and name the receipt's id, log and seq and the content that was sent.
func (l *load) checkAcked(t *testing.T, c *client.Client) {
	t.Helper()
	type item struct {
		id string
		r  trail.Receipt
	}
	items := make(chan item)
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for it := range items {
				b, _, err := c.Get(context.Background(), it.id)
				var rec trail.Record
				if err == nil {
					err = json.Unmarshal(b, &rec)
				}
				msg := ""
				switch e := l.events[it.id]; {
				case err != nil:
					msg = err.Error()
				case tlog.RecordHash(b) != it.r.LeafHash:
					msg = fmt.Sprintf("bytes %s hash to %s, receipt says %s", b, tlog.RecordHash(b), it.r.LeafHash)
				case rec.ID != it.r.ID || rec.Log != it.r.Log || rec.Seq != it.r.Seq:
					msg = fmt.Sprintf("record is %s/%d/%s, receipt %s/%d/%s", rec.Log, rec.Seq, rec.ID, it.r.Log, it.r.Seq, it.r.ID)
				case string(rec.Data) != string(e.Data) || rec.Action != e.Action:
					msg = fmt.Sprintf("record %s does not hold the event sent", b)
				}
				if msg != "" {
					mu.Lock()
					bad = append(bad, it.id+": "+msg)
					mu.Unlock()
				}
			}
		})
	}
	for id, r := range l.acked {
		items <- item{id, r}
	}
	close(items)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d acknowledged events are not stored as acknowledged; first: %s", len(bad), len(l.acked), bad[0])
	}
}

// checkDense streams every record and checks that each log's seqs are
// exactly 0..N-1, and that no id appears twice. It returns the ids.
func checkDense(t *testing.T, c *client.Client) map[string]bool {
	t.Helper()
	seqs := map[string][]int64{}
	ids := map[string]bool{}
	for b, err := range c.Stream(context.Background(), client.Query{Order: "asc"}) {
		if err != nil {
			t.Fatal(err)
		}
		var r trail.Record
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if ids[r.ID] {
			t.Fatalf("id %s is stored twice", r.ID)
		}
		ids[r.ID] = true
		seqs[r.Log] = append(seqs[r.Log], r.Seq)
	}
	for log, s := range seqs {
		slices.Sort(s)
		for i, seq := range s {
			if seq != int64(i) {
				t.Fatalf("log %s: seqs are not dense: position %d holds seq %d (%d records)", log, i, seq, len(s))
			}
		}
	}
	return ids
}

// TestKill9 is the crash test: a server killed with SIGKILL while requests
// are in flight loses nothing it acknowledged, and its log stays dense.
func TestKill9(t *testing.T) {
	data := t.TempDir()
	l := newLoad()
	const rounds = 3
	for round := range rounds {
		p := MustStartServe(t, data)
		if err := client.New(p.URL).Ready(context.Background()); err != nil {
			t.Fatalf("round %d: after restart: %v", round, err)
		}
		stop := make(chan struct{})
		wait := l.run(p.URL, 16, stop)
		l.waitAcked(t, l.nAcked.Load()+3000)
		p.Stop(t, syscall.SIGKILL)
		if !exitedBySignal(p) {
			t.Fatalf("round %d: the server exited by itself: %v", round, p.err)
		}
		close(stop)
		wait()
		t.Logf("round %d: %d events acknowledged so far; failed requests: %v", round, len(l.acked), l.failures)
	}

	p := MustStartServe(t, data)
	c := client.New(p.URL)
	if err := c.Ready(context.Background()); err != nil {
		t.Fatalf("after the last restart: %v", err)
	}
	l.checkAcked(t, c)
	stored := checkDense(t, c)
	for id := range l.acked {
		if !stored[id] {
			t.Fatalf("acknowledged id %s is not in the log", id)
		}
	}

	// A producer retries what failed, with the same ids: each is stored
	// exactly once, whether or not its first attempt was committed before
	// the kill.
	for batch := range slices.Chunk(l.unacked, 100) {
		res, err := c.Push(context.Background(), batch...)
		if err != nil {
			t.Fatalf("retry after restart: %v", err)
		}
		for i, r := range res.Receipts {
			if r.ID != batch[i].ID {
				t.Fatalf("retry: got receipt for %s, want %s", r.ID, batch[i].ID)
			}
		}
	}
	stored = checkDense(t, c)
	if len(stored) != len(l.events) {
		t.Fatalf("got %d records, want %d: every event sent, once", len(stored), len(l.events))
	}
	t.Logf("%d events sent, %d acknowledged before kills, %d retried after", len(l.events), len(l.acked), len(l.unacked))
}

// TestSIGTERM stops a server under load with SIGTERM: requests in flight
// finish with 2xx (or a 503 refusal), it exits 0, and after a restart every
// acknowledged event is there and covered by the final checkpoint.
func TestSIGTERM(t *testing.T) {
	data := t.TempDir()
	p := MustStartServe(t, data)
	l := newLoad()
	stop := make(chan struct{})
	wait := l.run(p.URL, 16, stop)
	l.waitAcked(t, 3000)
	l.signaled.Store(time.Now().UnixNano())
	if code := p.Stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("got exit code %d after SIGTERM, want 0\n%s", code, p.stderr.String())
	}
	close(stop)
	wait()
	for status := range l.statuses {
		if status != http.StatusOK && status != http.StatusCreated && status != http.StatusServiceUnavailable {
			t.Fatalf("got HTTP %d during shutdown; answers: %v", status, l.statuses)
		}
	}
	for cause := range l.failures {
		if cause != "503" && !isConnError(cause) {
			t.Fatalf("a request failed with %q during shutdown; failures: %v", cause, l.failures)
		}
	}
	t.Logf("answers %v; %d requests acknowledged after SIGTERM was sent; failed requests %v", l.statuses, l.lateAcks.Load(), l.failures)

	p = MustStartServe(t, data)
	c := client.New(p.URL)
	l.checkAcked(t, c)
	stored := checkDense(t, c)

	// The shutdown drained the queue and signed the final size.
	vkey, err := c.VerifierKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	note, err := c.Checkpoint(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.OpenCheckpoint(note, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != int64(len(stored)) {
		t.Fatalf("final checkpoint covers %d records, the log holds %d", cp.Size, len(stored))
	}
}

func isConnError(cause string) bool {
	switch cause {
	case "connection refused", "connection reset", "connection closed":
		return true
	}
	return false
}

// TestKill9Loop kills the server with SIGKILL 20 times in one run, on
// segments of 32 KiB, so that kills land during segment rolls and their
// compressions (it checks that some did); every
// fourth round also drops the index and kills a server while it rebuilds
// the index at start-up. After each restart every acknowledged event must
// read back byte-identical, and the log must be dense.
func TestKill9Loop(t *testing.T) {
	data := t.TempDir()
	args := []string{"--segment-size", "32KiB"}
	l := newLoad()
	rng := rand.New(rand.NewPCG(7, 11))
	const rounds = 20
	interrupted := 0 // kills that left compressions to do or half done
	for round := range rounds {
		if round%4 == 3 {
			if err := os.RemoveAll(filepath.Join(data, "index")); err != nil {
				t.Fatal(err)
			}
			killDuringStart(t, data, time.Duration(rng.IntN(40))*time.Millisecond, args...)
		}
		p := MustStartServe(t, data, args...)
		c := client.New(p.URL)
		l.checkAcked(t, c)
		checkDense(t, c)
		stop := make(chan struct{})
		wait := l.run(p.URL, 8, stop)
		l.waitAcked(t, l.nAcked.Load()+200+int64(rng.IntN(400)))
		p.Stop(t, syscall.SIGKILL)
		if !exitedBySignal(p) {
			t.Fatalf("round %d: the server exited by itself: %v", round, p.err)
		}
		close(stop)
		wait()
		interrupted += compressing(data)
	}
	p := MustStartServe(t, data, args...)
	c := client.New(p.URL)
	l.checkAcked(t, c)
	stored := checkDense(t, c)
	for id := range l.acked {
		if !stored[id] {
			t.Fatalf("acknowledged id %s is not in the log", id)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(data, "log", "*.seg"))
	segz, _ := filepath.Glob(filepath.Join(data, "log", "*.segz"))
	t.Logf("%d rounds: %d events acknowledged, %d records in %d segments, %d compressed; %d kills interrupted compressions",
		rounds, len(l.acked), len(stored), len(segs), len(segz), interrupted)
	if len(segz) == 0 || interrupted == 0 {
		t.Fatalf("got %d compressed segments and %d kills during compressions, want some of both", len(segz), interrupted)
	}
}

// compressing reports (1 or 0) whether the log in data holds a compression
// under way or yet to do: a temporary compressed file, or a sealed segment
// not yet compressed (every uncompressed segment but the last).
func compressing(data string) int {
	tmp, _ := filepath.Glob(filepath.Join(data, "log", "*.segz.tmp"))
	segs, _ := filepath.Glob(filepath.Join(data, "log", "*.seg"))
	if len(tmp) > 0 || len(segs) > 1 {
		return 1
	}
	return 0
}

// killDuringStart starts trail serve on data and kills it after d, which
// may be before it listens: while it recovers the log or rebuilds the index.
func killDuringStart(t *testing.T, data string, d time.Duration, args ...string) {
	t.Helper()
	cmd := exec.Command(testserver.TrailBinary(t), append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--log-format", "json"}, args...)...)
	cmd.Env = testserver.ChildEnv()
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	cmd.Process.Kill()
	cmd.Wait()
}
