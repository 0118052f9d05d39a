package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// procStatusKB reads a field of /proc/PID/status, in KiB (VmRSS, VmHWM).
func procStatusKB(tb testing.TB, pid int, field string) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("/proc/%d/status %s: %v", pid, field, err)
			}
			return n
		}
	}
	tb.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// bigBatch is a JSON array of n events of about size bytes each, numbered
// from first.
func bigBatch(first, n, size int) string {
	var b strings.Builder
	b.WriteByte('[')
	pad := strings.Repeat("<", size-150) // '<' was once stored as \u003c, 6 bytes
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"action":"memory.test","actor":{"id":"attacker"},"source":{"service":"memory-test"},"data":{"n":%d,"pad":%q}}`, first+i, pad)
	}
	b.WriteByte(']')
	return b.String()
}

// postStatus posts a JSON body to url/logs and returns the status, or 0 if
// the request failed.
func postStatus(c *http.Client, url, body string) int {
	resp, err := c.Post(url+"/logs", "application/json", strings.NewReader(body))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestMemoryUnderAttack runs, at once, the attacks that once grew the
// server without bound: request headers promising 10 MiB bodies that never
// come, pages of 1,000 large records, exports to readers that stop reading,
// and 32 concurrent 9.6 MB batches. With GOMEMLIMIT unset, the peak RSS
// must stay under 1 GiB (docs/OPERATIONS.md, "Memory", has the measured
// figures), small writes must still get through, and the memory must go
// back to the system within 30 seconds of the attack's end.
func TestMemoryUnderAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("sends about half a gigabyte over loopback")
	}
	for _, v := range []string{"GOMEMLIMIT", "GOGC"} {
		t.Setenv(v, "") // restored at the end
		os.Unsetenv(v)
	}
	p := MustStartServe(t, t.TempDir())
	pid := p.cmd.Process.Pid
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 2 * time.Minute}

	// 1,000 records of 60 KB: a page of 1,000 is 60 MB.
	for i := range 100 {
		if s := postStatus(c, p.URL, bigBatch(i*10, 10, 60_000)); s != http.StatusCreated {
			t.Fatalf("seeding: got %d, want 201", s)
		}
	}
	// Warm SQLite's page caches, every read connection's, with the reads
	// of the attack, so that the baseline includes them.
	var warm sync.WaitGroup
	for i := range 10 {
		warm.Go(func() {
			path := "/logs?limit=1000"
			if i < 4 {
				path = "/export?to=end"
			}
			if resp, err := c.Get(p.URL + path); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	warm.Wait()
	time.Sleep(6 * time.Second) // an idle moment: the server releases what the warm-up left
	baseline := procStatusKB(t, pid, "VmRSS")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[string]map[int]int{}
	count := func(what string, status int) {
		mu.Lock()
		defer mu.Unlock()
		if statuses[what] == nil {
			statuses[what] = map[int]int{}
		}
		statuses[what][status]++
	}

	// Headers that promise 10 MiB and a body that never comes.
	var conns []net.Conn
	for range 100 {
		conn := dial(t, p.URL)
		conns = append(conns, conn)
		fmt.Fprintf(conn, "POST /logs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n[", 10<<20)
	}
	// Exports to readers that read a little, then stop.
	for range 4 {
		conn := dial(t, p.URL)
		conns = append(conns, conn)
		fmt.Fprintf(conn, "GET /export?to=end HTTP/1.1\r\nHost: localhost\r\n\r\n")
		// A deadline, so that an answer shorter than this (an error) fails
		// the test rather than hanging it.
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(conn, make([]byte, 4096)); err != nil {
			t.Fatalf("export: read the first 4096 bytes: %v", err)
		}
		conn.SetReadDeadline(time.Time{})
	}
	// Pages of 1,000 large records, six at a time.
	for range 6 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(p.URL + "/logs?limit=1000")
				if err != nil {
					count("list", 0)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				count("list", resp.StatusCode)
			}
		})
	}
	// 32 legitimate batches of 9.6 MB at once.
	batch := bigBatch(0, 160, 60_000)
	for range 32 {
		wg.Go(func() { count("batch", postStatus(c, p.URL, batch)) })
	}
	// A producer of small events, which must keep getting through.
	var small atomic.Int64
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			s := postStatus(c, p.URL, fmt.Sprintf(`{"action":"small.event","actor":{"id":"u"},"source":{"service":"s"},"data":{"i":%d}}`, i))
			count("small", s)
			if s == http.StatusCreated {
				small.Add(1)
			}
		}
	})

	const bound = 1 << 20 // KiB: 1 GiB
	var peakRSS int64
	for range 80 { // 8 s of attack
		time.Sleep(100 * time.Millisecond)
		peakRSS = max(peakRSS, procStatusKB(t, pid, "VmRSS"))
		if peakRSS > bound { // stop at once: the next seconds could take the machine's memory
			t.Fatalf("RSS: got %d MiB during the attack, want under %d MiB; answers %v", peakRSS>>10, bound>>10, statuses)
		}
	}
	close(stop)
	wg.Wait()
	for _, conn := range conns {
		conn.Close()
	}
	hwm := procStatusKB(t, pid, "VmHWM")

	// Recovery: the heap goes back to the system (releaseMemory). What
	// may remain above the baseline is SQLite's page cache, grown by the
	// 30 MB of batches that were stored.
	const cache = 64 << 10 // KiB
	start := time.Now()
	rss := procStatusKB(t, pid, "VmRSS")
	for rss > baseline+cache && time.Since(start) < 30*time.Second {
		time.Sleep(250 * time.Millisecond)
		rss = procStatusKB(t, pid, "VmRSS")
	}
	t.Logf("RSS: baseline %d MiB, peak %d MiB (VmHWM %d MiB), %d MiB %.1fs after the attack; answers %v",
		baseline>>10, peakRSS>>10, hwm>>10, rss>>10, time.Since(start).Seconds(), statuses)

	if hwm > bound {
		t.Fatalf("peak RSS (VmHWM): got %d MiB, want under %d MiB", hwm>>10, bound>>10)
	}
	if rss > baseline+cache {
		t.Fatalf("RSS 30s after the attack: got %d MiB, want at most %d MiB (baseline %d MiB and 64 MiB of page cache)", rss>>10, (baseline+cache)>>10, baseline>>10)
	}
	if small.Load() == 0 {
		t.Fatalf("small events: got no 201 during the attack, want some; answers %v", statuses["small"])
	}
}
