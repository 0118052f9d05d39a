package main

import (
	"context"
	"crypto/tls"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/testtls"
)

// tlsServe is a `trail serve` over HTTPS with a certificate from a private
// CA, in files that the test may replace.
type tlsServe struct {
	*Process
	CA     *testtls.CA
	CAFile string
	Dir    string // holds cert.pem and key.pem
	Leaf   testtls.Leaf
}

// MustStartTLSServe starts `trail serve --tls-cert --tls-key` with a new CA
// and certificate.
func MustStartTLSServe(tb testing.TB, args ...string) *tlsServe {
	tb.Helper()
	s := &tlsServe{CA: testtls.NewCA(tb, "trail test CA"), Dir: tb.TempDir()}
	s.CAFile = s.CA.WriteCA(tb, tb.TempDir())
	s.Leaf = s.CA.Issue(tb)
	certFile, keyFile := s.Leaf.Write(tb, s.Dir)
	s.Process = MustStartServe(tb, tb.TempDir(), append([]string{"--tls-cert", certFile, "--tls-key", keyFile}, args...)...)
	if !strings.HasPrefix(s.URL, "https://") {
		tb.Fatalf("got address line %q, want https://", s.URL)
	}
	return s
}

// addr is the server's host:port.
func (s *tlsServe) addr(tb testing.TB) string {
	tb.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		tb.Fatal(err)
	}
	return u.Host
}

// waitSerial waits until a new connection is served the certificate with
// serial want.
func (s *tlsServe) waitSerial(tb testing.TB, want *big.Int, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		got, err := s.CA.ServedSerial(tb, s.addr(tb))
		if err != nil {
			tb.Fatalf("handshake: %v", err)
		}
		if got.Cmp(want) == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: got serial %s, want %s", within, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeTLS(t *testing.T) {
	s := MustStartTLSServe(t)
	ctx := context.Background()

	// The CLI over HTTPS, trusting the private CA by flag and by variable.
	code, out, stderr := runMain(ctx, "", "push", "--url", s.URL, "--ca-file", s.CAFile,
		`{"id":"tls-1","action":"user.login","actor":{"id":"u1"},"source":{"service":"auth"}}`)
	if code != 0 {
		t.Fatalf("push --ca-file: got exit code %d, want 0: %s", code, stderr)
	}
	if r := decodeLines[trail.Receipt](t, out); len(r) != 1 || r[0].ID != "tls-1" {
		t.Fatalf("push --ca-file: got receipts %s, want one for tls-1", out)
	}
	t.Setenv("TRAIL_CA_FILE", s.CAFile)
	if code, out, stderr = runMain(ctx, "", "get", "--url", s.URL, "tls-1"); code != 0 || !strings.Contains(out, `"tls-1"`) {
		t.Fatalf("get with TRAIL_CA_FILE: got exit code %d and %q, want 0 and the record: %s", code, out, stderr)
	}
	// Export needs a signed checkpoint, which is signed off the commit path.
	export := filepath.Join(t.TempDir(), "export.ndjson")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _, stderr = runMain(ctx, "", "export", "--url", s.URL, "-o", export); code == 0 {
			break
		}
		if time.Now().After(deadline) || !strings.Contains(stderr, "no signed checkpoint yet") {
			t.Fatalf("export with TRAIL_CA_FILE: got exit code %d, want 0: %s", code, stderr)
		}
	}
	t.Setenv("TRAIL_CA_FILE", "")

	// Without the CA, the CLI fails at once and says what to do.
	start := time.Now()
	code, _, stderr = runMain(ctx, "", "get", "--url", s.URL, "tls-1")
	if code != exitError || !strings.Contains(stderr, "certificate") || !strings.Contains(stderr, "--ca-file") {
		t.Errorf("get without --ca-file: got exit code %d and %q, want %d and a certificate error naming --ca-file", code, stderr, exitError)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("get without --ca-file took %s, want a prompt failure (no retries)", d)
	}

	// HTTP/2 is negotiated, as gRPC on this port will need.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CA.Pool()}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("GET /healthz: got %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
	}

	// Plain HTTP gets net/http's own 400, as docs/API.md says.
	conn, err := net.DialTimeout("tcp", s.addr(t), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	plain, _ := io.ReadAll(conn)
	conn.Close()
	if want := "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"; string(plain) != want {
		t.Errorf("plain HTTP to the HTTPS port: got %q, want %q", plain, want)
	}

	// TLS 1.1 and older are refused.
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		conn, err := tls.Dial("tcp", s.addr(t), &tls.Config{RootCAs: s.CA.Pool(), MinVersion: v, MaxVersion: v})
		if err == nil {
			conn.Close()
			t.Errorf("got a %s handshake, want it refused", tls.VersionName(v))
		}
	}
}

func TestServeTLSFlags(t *testing.T) {
	dir := t.TempDir()
	leaf := testtls.NewCA(t, "CA").Issue(t)
	certFile, keyFile := leaf.Write(t, dir)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--tls-cert", certFile}, exitUsage, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", keyFile}, exitUsage, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", keyFile, "--tls-key", keyFile}, exitError, "--tls-cert"},
		{[]string{"--tls-cert", filepath.Join(dir, "missing.pem"), "--tls-key", keyFile}, exitError, "missing.pem"},
	} {
		data := filepath.Join(t.TempDir(), "data")
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data}, tc.args...)
		// Should serve start after all, the timeout stops it.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		code, _, stderr := runMain(ctx, "", args...)
		cancel()
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("trail %s: got exit code %d and %q, want %d and %q", strings.Join(args, " "), code, stderr, tc.code, tc.want)
		}
		// A bad certificate fails before anything is created on disk.
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("trail %s: got data directory stat %v, want it not created", strings.Join(args, " "), err)
		}
	}
}

// TestServeTLSRotationUnderLoad replaces the certificate while producers
// push over kept-alive connections and over a new connection per request:
// no request may fail, and new connections must get the new certificate.
func TestServeTLSRotationUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		rotate func(t *testing.T, s *tlsServe)
	}{
		{"files change", nil, func(t *testing.T, s *tlsServe) {}},
		{"SIGHUP", []string{"--tls-reload-interval", "0"}, func(t *testing.T, s *tlsServe) {
			if runtime.GOOS == "windows" {
				t.Skip("no SIGHUP on Windows")
			}
			// With polling off, only the signal can load the new files.
			if got, err := s.CA.ServedSerial(t, s.addr(t)); err != nil || got.Cmp(s.Leaf.Serial) != 0 {
				t.Fatalf("before SIGHUP: got serial %v (%v), want the replaced %s still", got, err, s.Leaf.Serial)
			}
			if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := MustStartTLSServe(t, tc.args...)
			caOpt := client.WithCAFile(s.CAFile)
			kept, fresh := newLoad(), newLoad()
			stop := make(chan struct{})
			// A new connection, and so a new handshake, per request.
			noKeepAlive := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			waitKept := kept.run(s.URL, 2, stop, caOpt)
			waitFresh := fresh.run(s.URL, 2, stop, caOpt, client.WithHTTPClient(noKeepAlive))
			defer func() {
				select {
				case <-stop:
				default:
					close(stop)
				}
				waitKept()
				waitFresh()
			}()
			kept.waitAcked(t, 100)
			fresh.waitAcked(t, 100)

			next := s.CA.Issue(t)
			next.Write(t, s.Dir)
			tc.rotate(t, s)
			s.waitSerial(t, next.Serial, 5*time.Second)
			// Keep the load on new and old connections a little longer.
			keptN, freshN := kept.nAcked.Load(), fresh.nAcked.Load()
			kept.waitAcked(t, keptN+100)
			fresh.waitAcked(t, freshN+100)
			close(stop)
			waitKept()
			waitFresh()

			for name, l := range map[string]*load{"kept-alive": kept, "new-connection": fresh} {
				if len(l.failures) != 0 || len(l.unacked) != 0 {
					t.Errorf("%s producers: got failed requests %v (%d events unacknowledged), want none", name, l.failures, len(l.unacked))
				}
				for status, n := range l.statuses {
					if status != http.StatusCreated {
						t.Errorf("%s producers: got %d answers of %d, want only 201", name, n, status)
					}
				}
				t.Logf("%s producers: %d events acknowledged", name, l.nAcked.Load())
			}
			c := client.New(s.URL, caOpt)
			kept.checkAcked(t, c)
			fresh.checkAcked(t, c)
		})
	}
}
