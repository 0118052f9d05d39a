package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trail-audit/trail/client"
)

// With single events the generator's cost is per request, and Go's HTTP
// client spends about 40 CPU-µs on each: a Request and its Header map, two
// goroutines per connection, a Response. The raw path writes each request
// as HTTP/1.1 bytes whose head is built once, on one kept-alive connection
// per worker, and reads the answer with a bufio.Reader it reuses. It
// follows the SDK's retry policy (client.RetryWait), as the std path does.

// maxRawAnswer bounds an answer's body: receipts for the largest batch the
// server takes are far smaller, and a garbled length must not allocate
// gigabytes.
const maxRawAnswer = 64 << 20

// rawTarget is what the raw connections of a run share: the address to dial,
// the head every request carries after its request line, and the base path.
type rawTarget struct {
	addr   string
	prefix string // the URL's path, before /logs
	common []byte // Host, User-Agent, Accept and Authorization lines
	head   []byte // a POST /logs request's head, up to the Content-Length value
}

// newRawTarget returns the raw path's target for cf, or nil if the URL
// needs the std path: https (TLS is left to net/http) or credentials in
// the URL.
func newRawTarget(cf *clientFlags) (*rawTarget, error) {
	u, err := url.Parse(strings.TrimRight(cf.url, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("bad --url %q: want http://host:port", cf.url)
	}
	if u.Scheme != "http" || u.User != nil {
		return nil, nil
	}
	if strings.ContainsAny(cf.token, "\r\n") {
		return nil, errors.New("--token holds a line break")
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	t := &rawTarget{addr: addr, prefix: u.EscapedPath()}
	t.common = append(t.common, "Host: "+u.Host+"\r\n"...)
	t.common = append(t.common, "User-Agent: trail-cli/"+versionString()+"\r\n"...)
	t.common = append(t.common, "Accept: application/json\r\n"...)
	if cf.token != "" {
		t.common = append(t.common, "Authorization: Bearer "+cf.token+"\r\n"...)
	}
	t.head = append(t.head, "POST "+t.prefix+"/logs HTTP/1.1\r\n"...)
	t.head = append(t.head, t.common...)
	t.head = append(t.head, "Content-Type: application/json\r\nContent-Length: "...)
	return t, nil
}

// get appends a GET request of path (below the URL's path, with its query)
// to dst.
func (t *rawTarget) get(dst []byte, path string) []byte {
	dst = append(dst, "GET "+t.prefix+path+" HTTP/1.1\r\n"...)
	dst = append(dst, t.common...)
	return append(dst, "\r\n"...)
}

// rawConn is one worker's connection; it dials on first use and again
// after the server closes it.
type rawConn struct {
	t    *rawTarget
	conn net.Conn // nil: not connected
	br   *bufio.Reader
	req  []byte // the request being sent; reused
	used bool   // an answer was read on conn: it has been kept alive
}

// rawAnswer is what one exchange got.
type rawAnswer struct {
	status     int // 0: no complete answer
	retryAfter string
	close      bool // the server closes the connection after this answer
	// stale: the connection had been kept alive, and the server closed it
	// before answering; nothing was processed if the request never
	// arrived, and ids make a resend harmless if it did.
	stale bool
}

// malformedAnswer is an answer that is not HTTP/1.1 as the raw path reads
// it; the connection cannot be trusted after one, and it is not retried.
type malformedAnswer struct{ msg string }

func (e *malformedAnswer) Error() string { return "malformed HTTP answer: " + e.msg }

func malformed(format string, args ...any) error {
	return &malformedAnswer{fmt.Sprintf(format, args...)}
}

func (rc *rawConn) close() {
	if rc.conn != nil {
		rc.conn.Close()
		rc.conn, rc.used = nil, false
	}
}

// exchange sends body and appends the answer's body to dst, all before
// deadline. On an error the connection is closed.
func (rc *rawConn) exchange(body, dst []byte, deadline time.Time) ([]byte, rawAnswer, error) {
	rc.req = append(rc.req[:0], rc.t.head...)
	rc.req = strconv.AppendInt(rc.req, int64(len(body)), 10)
	rc.req = append(append(rc.req, "\r\n\r\n"...), body...)
	return rc.roundTrip(rc.req, dst, deadline)
}

// roundTrip sends the request req, whole, and appends the answer's body
// to dst, all before deadline. On an error the connection is closed.
func (rc *rawConn) roundTrip(req, dst []byte, deadline time.Time) ([]byte, rawAnswer, error) {
	if rc.conn == nil {
		d := net.Dialer{Deadline: deadline}
		c, err := d.Dial("tcp", rc.t.addr)
		if err != nil {
			return dst, rawAnswer{}, err
		}
		rc.conn = c
		if rc.br == nil {
			rc.br = bufio.NewReaderSize(c, 16<<10)
		} else {
			rc.br.Reset(c)
		}
	}
	reused := rc.used
	rc.conn.SetDeadline(deadline)
	if _, err := rc.conn.Write(req); err != nil {
		rc.close()
		return dst, rawAnswer{stale: reused && closedEarly(err)}, err
	}
	dst, a, err := rc.readAnswer(dst)
	if err != nil {
		rc.close()
		return dst, rawAnswer{stale: reused && closedEarly(err)}, err
	}
	rc.used = true
	if a.close {
		rc.close()
	}
	return dst, a, nil
}

// closedEarly reports whether err is the peer's close before any answer:
// readAnswer turns an end of input within an answer into
// io.ErrUnexpectedEOF.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// readAnswer reads an answer's head and appends its body to dst.
func (rc *rawConn) readAnswer(dst []byte) ([]byte, rawAnswer, error) {
	a, length, chunked, err := rc.readHead()
	if err != nil {
		return dst, rawAnswer{}, err
	}
	start := len(dst)
	switch {
	case a.status == 204 || a.status == 304:
	case chunked:
		dst, err = rc.readChunked(dst)
	case length >= 0:
		dst = slices.Grow(dst, int(length))[:len(dst)+int(length)]
		_, err = io.ReadFull(rc.br, dst[start:])
	default: // the body ends where the connection does
		a.close = true
		b := bytes.NewBuffer(dst)
		_, err = b.ReadFrom(io.LimitReader(rc.br, maxRawAnswer))
		dst = b.Bytes()
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return dst[:start], rawAnswer{}, fmt.Errorf("reading the body of a %d answer: %w", a.status, err)
	}
	return dst, a, nil
}

// readHead reads the status line and the header, skipping interim (1xx)
// answers. length is the Content-Length, -1 if none was given.
func (rc *rawConn) readHead() (a rawAnswer, length int64, chunked bool, err error) {
	for {
		line, err := rc.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("the server closed the connection before answering: %w", err)
			}
			return a, 0, false, err
		}
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
			return a, 0, false, malformed("status line %.80q", line)
		}
		status, err := strconv.Atoi(string(line[9:12]))
		if err != nil || status < 100 {
			return a, 0, false, malformed("status line %.80q", line)
		}
		a = rawAnswer{status: status, close: line[7] == '0'}
		length, chunked, err = rc.readHeader(&a)
		if err != nil || status >= 200 {
			return a, length, chunked, err
		}
		if status == 101 {
			return a, 0, false, malformed("101 Switching Protocols")
		}
	}
}

// readHeader reads header lines up to the blank one into a, and returns
// the body's framing.
func (rc *rawConn) readHeader(a *rawAnswer) (length int64, chunked bool, err error) {
	length = -1
	for range 128 {
		line, err := rc.readLine()
		if err != nil {
			return 0, false, err
		}
		if len(line) == 0 {
			return length, chunked, nil
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 || line[0] == ' ' || line[0] == '\t' {
			return 0, false, malformed("header line %.80q", line)
		}
		name, value := line[:i], bytes.TrimSpace(line[i+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || n > maxRawAnswer || (length >= 0 && n != length) {
				return 0, false, malformed("Content-Length %.40q", value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return 0, false, malformed("Transfer-Encoding %.40q (only chunked is read)", value)
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			a.close = a.close || bytes.Contains(bytes.ToLower(value), []byte("close"))
		case bytes.EqualFold(name, []byte("Retry-After")):
			a.retryAfter = string(value)
		}
	}
	return 0, false, malformed("more than 128 header lines")
}

// readChunked appends a chunked body to dst, and reads its trailer.
func (rc *rawConn) readChunked(dst []byte) ([]byte, error) {
	for {
		line, err := rc.readLine()
		if err != nil {
			return dst, err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || n < 0 || int64(len(dst))+n > maxRawAnswer {
			return dst, malformed("chunk size %.40q", line)
		}
		if n == 0 {
			_, _, err := rc.readHeader(&rawAnswer{}) // the trailer
			return dst, err
		}
		start := len(dst)
		dst = slices.Grow(dst, int(n))[:len(dst)+int(n)]
		if _, err := io.ReadFull(rc.br, dst[start:]); err != nil {
			return dst, err
		}
		if line, err := rc.readLine(); err != nil || len(line) != 0 {
			return dst, errors.Join(err, malformed("no line break after a chunk"))
		}
	}
}

// readLine returns the next line without its line break; it is valid
// until the next read.
func (rc *rawConn) readLine() ([]byte, error) {
	line, err := rc.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, malformed("a line longer than %d bytes", rc.br.Size())
	}
	if err != nil {
		if len(line) > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// postRaw sends one request on rc, retrying as the SDK would, counts each
// attempt's answer in bw, and appends the accepted answer's body to dst.
// The timeout bounds the whole request, retries included, as the std
// path's context does.
func (l *benchLoad) postRaw(rc *rawConn, bw *benchWorker, body, dst []byte) ([]byte, error) {
	deadline := time.Now().Add(l.cfg.timeout)
	resent := false
	start := len(dst)
	for attempt := 0; ; {
		answer, a, err := rc.exchange(body, dst[:start], deadline)
		if err == nil && (a.status == 200 || a.status == 201) {
			bw.answers[statusClass(a.status)]++
			return answer, nil
		}
		if err != nil {
			bw.answers[errClass(err)]++
		} else {
			bw.answers[statusClass(a.status)]++
			err = &client.Error{Status: a.status, Detail: detail(answer[start:])}
		}
		if a.stale && !resent && l.cfg.ids {
			// As net/http does for a request it may replay: once, at
			// once, on a new connection.
			resent = true
			continue
		}
		wait, retry := l.cl.RetryWait(attempt, a.status, err, a.retryAfter, l.cfg.ids)
		if !retry {
			return dst[:start], fmt.Errorf("bench: POST /logs: %w", err)
		}
		if time.Now().Add(wait).After(deadline) {
			return dst[:start], fmt.Errorf("bench: POST /logs: %w after %v", os.ErrDeadlineExceeded, l.cfg.timeout)
		}
		time.Sleep(wait)
		attempt++
	}
}

// statusClass is a status's key in the answer counts.
func statusClass(status int) string {
	switch status {
	case 200:
		return "200"
	case 201:
		return "201"
	}
	return strconv.Itoa(status)
}

// detail is an error answer's body, short, for messages.
func detail(b []byte) string {
	s := strings.TrimSpace(string(b[:min(len(b), 300)]))
	return strings.ToValidUTF8(s, "?")
}
