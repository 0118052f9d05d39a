package testserver

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Raw sends req, a request exactly as written on the wire, to baseURL's
// host on a new connection and returns the answer with its body read. Unlike
// http.Client it sends what a hostile client would: unclean paths, CONNECT,
// duplicate or unsupported framing headers.
func Raw(tb testing.TB, baseURL, req string) (*http.Response, []byte) {
	tb.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(waitLimit))
	line, _, _ := strings.Cut(req, "\r\n")
	if _, err := io.WriteString(conn, req); err != nil {
		tb.Fatalf("%q: %v", line, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 {
		resp, err = http.ReadResponse(br, nil) // skip 100 Continue
	}
	if err != nil {
		tb.Fatalf("%q: read answer: %v", line, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%q: read body: %v", line, err)
	}
	return resp, b
}
