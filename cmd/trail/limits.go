package main

import (
	"context"
	"flag"
	"net"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/trail-audit/trail/httpapi"
	"github.com/trail-audit/trail/tail"
)

// limitFlags are trail serve's bounds on connections and memory
// (docs/OPERATIONS.md, "Memory").
type limitFlags struct {
	maxConnections                     int
	bodyMemory, readMemory, pageMemory byteSize
	queueBytes                         byteSize
	streamMemory, streamQueue          byteSize
}

func (f *limitFlags) register(fs *flag.FlagSet) {
	d := httpapi.DefaultMemory
	f.bodyMemory, f.readMemory, f.pageMemory = byteSize(d.Bodies), byteSize(d.Reads), byteSize(d.Response)
	f.queueBytes = 64 << 20
	f.streamMemory, f.streamQueue = byteSize(tail.DefaultConfig.Memory), byteSize(tail.DefaultConfig.QueueBytes)
	fs.IntVar(&f.maxConnections, "max-connections", 1024, "most client `connections` open at once; more wait to be accepted")
	fs.Var(&f.bodyMemory, "body-memory", "request bodies held in memory at once, in all (`size`; 503 + Retry-After above)")
	fs.Var(&f.readMemory, "read-memory", "records held in memory by reads at once, in all (`size`; 503 + Retry-After above)")
	fs.Var(&f.pageMemory, "page-memory", "records one read holds at once (`size`): a JSON page ends early with a next cursor")
	fs.Var(&f.queueBytes, "queue-bytes", "records queued for commit (`size`) before requests get 503 + Retry-After")
	fs.Var(&f.streamMemory, "stream-memory", "memory live tails reserve at once, in all (`size`; each --stream-queue + 2 × --page-memory; 503 + Retry-After above)")
	fs.Var(&f.streamQueue, "stream-queue", "records a live tail may fall behind (`size`) before it is cut off")
}

func (f *limitFlags) validate() error {
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"max-connections", int64(f.maxConnections)}, {"body-memory", int64(f.bodyMemory)},
		{"read-memory", int64(f.readMemory)}, {"page-memory", int64(f.pageMemory)}, {"queue-bytes", int64(f.queueBytes)},
		{"stream-memory", int64(f.streamMemory)}, {"stream-queue", int64(f.streamQueue)},
	} {
		if err := positive(n.name, n.v); err != nil {
			return err
		}
	}
	return nil
}

func (f *limitFlags) memory() httpapi.Memory {
	return httpapi.Memory{Bodies: int64(f.bodyMemory), Reads: int64(f.readMemory), Response: int64(f.pageMemory)}
}

// tail bounds the live tail; its pages are --page-memory, as other reads'.
func (f *limitFlags) tail() tail.Config {
	return tail.Config{QueueBytes: int64(f.streamQueue), PageBytes: int64(f.pageMemory), Memory: int64(f.streamMemory)}
}

// A limitListener holds at most n connections open at once. Beyond that,
// Accept waits for one to close, and new connections wait in the kernel's
// backlog: each costs the server nothing until it is accepted. It is
// golang.org/x/net/netutil.LimitListener in a few lines, without the
// module.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, free: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// A limitConn frees its listener's slot when it is first closed.
type limitConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}

// CloseWrite lets net/http half-close the connection after an error it
// answers itself (431, 400), so that the client reads the answer rather
// than a reset.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// releaseMemory gives memory back to the operating system once a burst of
// requests has passed. The runtime returns freed pages only after a
// collection, and an idle server allocates too little to start one (it
// forces one only every 2 minutes), so after a burst the process would
// keep its peak for minutes. Every interval in which no collection ran, if
// the runtime holds slack more than after the last release, it collects
// and releases now. Under load, collections run anyway and it does
// nothing.
func releaseMemory(ctx context.Context, every time.Duration, slack uint64) {
	samples := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	read := func() (cycles, held uint64) {
		metrics.Read(samples)
		return samples[0].Value.Uint64(), samples[1].Value.Uint64() - samples[2].Value.Uint64()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	lastCycles, floor := read()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cycles, held := read()
		if cycles == lastCycles && held > floor+slack {
			debug.FreeOSMemory()
			cycles, held = read()
			floor = held
		}
		lastCycles = cycles
		floor = min(floor, held)
	}
}
