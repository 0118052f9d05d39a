package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// dial opens a connection to the server at url, closed when the test ends
// if not before.
func dial(tb testing.TB, url string) net.Conn {
	tb.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// TestMaxConnections holds every connection the server allows: a new
// client waits, unanswered, until one of them closes.
func TestMaxConnections(t *testing.T) {
	p := MustStartServe(t, t.TempDir(), "--max-connections", "2")
	var held []net.Conn
	for range 2 {
		conn := dial(t, p.URL)
		// An answer proves the server accepted it; keep-alive keeps it.
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("held connection: %v", err)
		}
		resp.Body.Close()
		held = append(held, conn)
	}

	c := &http.Client{Timeout: 500 * time.Millisecond}
	if resp, err := c.Get(p.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a third connection: got %d, want no answer while two are held", resp.StatusCode)
	}
	held[0].Close()
	c.Timeout = 10 * time.Second
	resp, err := c.Get(p.URL + "/healthz")
	if err != nil {
		t.Fatalf("after one closed: got %v, want an answer", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after one closed: got %d, want 200", resp.StatusCode)
	}
}
