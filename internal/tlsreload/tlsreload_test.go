package tlsreload_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/testtls"
	"github.com/trail-audit/trail/internal/tlsreload"
)

// mustServe serves a handler that answers its protocol over TLS with r's
// configuration, on a loopback port, and returns the address.
func mustServe(tb testing.TB, r *tlsreload.Reloader) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, req.Proto) }),
		TLSConfig: r.ServerConfig(),
	}
	go srv.ServeTLS(ln, "", "")
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// mustNew writes leaf to dir and returns a reloader serving it.
func mustNew(tb testing.TB, leaf testtls.Leaf, dir string) *tlsreload.Reloader {
	tb.Helper()
	certFile, keyFile := leaf.Write(tb, dir)
	r, err := tlsreload.New(certFile, keyFile, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func servedSerial(tb testing.TB, ca *testtls.CA, addr string) *big.Int {
	tb.Helper()
	s, err := ca.ServedSerial(tb, addr)
	if err != nil {
		tb.Fatalf("handshake with %s: %v", addr, err)
	}
	return s
}

func TestHandshakeHTTP2AndMinimumVersion(t *testing.T) {
	ca := testtls.NewCA(t, "test CA")
	leaf := ca.Issue(t)
	r := mustNew(t, leaf, t.TempDir())
	addr := mustServe(t, r)

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got, want := string(body), "HTTP/2.0"; got != want {
		t.Errorf("got protocol %q, want %q", got, want)
	}
	if got, want := resp.TLS.PeerCertificates[0].SerialNumber, leaf.Serial; got.Cmp(want) != 0 {
		t.Errorf("got serial %s, want %s", got, want)
	}

	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), MinVersion: v, MaxVersion: v})
		if err == nil {
			conn.Close()
			t.Errorf("got a %s handshake, want it refused", tls.VersionName(v))
		}
	}
	// A client of another CA must not trust the server.
	other := testtls.NewCA(t, "other CA")
	if _, err := other.ServedSerial(t, addr); err == nil || !errors.As(err, new(*tls.CertificateVerificationError)) {
		t.Errorf("got %v from a client trusting another CA, want a certificate verification error", err)
	}
}

func TestNewRefusesBadPairs(t *testing.T) {
	ca := testtls.NewCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t).Write(t, dir)
	otherKey := filepath.Join(dir, "other-key.pem")
	if err := os.WriteFile(otherKey, ca.Issue(t).KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, cert, key string }{
		{"missing cert", filepath.Join(dir, "nope.pem"), keyFile},
		{"missing key", certFile, filepath.Join(dir, "nope.pem")},
		{"mismatched key", certFile, otherKey},
		{"key as cert", keyFile, keyFile},
		{"empty name", "", keyFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := tlsreload.New(tc.cert, tc.key, nil); err == nil {
				t.Errorf("got a reloader serving serial %s, want an error", r.Certificate().Leaf.SerialNumber)
			}
		})
	}
}

func TestReloadServesNewPairAndKeepsOldOnError(t *testing.T) {
	ca := testtls.NewCA(t, "test CA")
	dir := t.TempDir()
	first := ca.Issue(t)
	r := mustNew(t, first, dir)
	addr := mustServe(t, r)

	second := ca.Issue(t)
	second.Write(t, dir)
	if got := servedSerial(t, ca, addr); got.Cmp(first.Serial) != 0 {
		t.Fatalf("before Reload: got serial %s, want %s (nothing watches the files)", got, first.Serial)
	}
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := servedSerial(t, ca, addr); got.Cmp(second.Serial) != 0 {
		t.Fatalf("after Reload: got serial %s, want %s", got, second.Serial)
	}

	// A broken pair (a certificate whose key is not the key file's) is
	// refused, and the last good pair stays in service.
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), ca.Issue(t).CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), "cert.pem") {
		t.Errorf("Reload of a mismatched pair: got %v, want an error naming the file", err)
	}
	if got := servedSerial(t, ca, addr); got.Cmp(second.Serial) != 0 {
		t.Errorf("after a failed Reload: got serial %s, want %s", got, second.Serial)
	}
}

// TestLogs checks what an operator sees: the serial and expiry of each
// certificate loaded, and a failed reload at error level.
func TestLogs(t *testing.T) {
	ca := testtls.NewCA(t, "test CA")
	dir := t.TempDir()
	leaf := ca.Issue(t)
	certFile, keyFile := leaf.Write(t, dir)
	var buf bytes.Buffer
	r, err := tlsreload.New(certFile, keyFile, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "msg=\"tls: certificate loaded\" file="+certFile; !strings.Contains(got, want) || !strings.Contains(got, "serial="+leaf.Serial.String()) {
		t.Errorf("got log %q, want %q and serial=%s", got, want, leaf.Serial)
	}
	buf.Reset()
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Reload()
	if got, want := buf.String(), "level=ERROR msg=\"tls: certificate reload failed; still serving the previous certificate\""; !strings.Contains(got, want) {
		t.Errorf("got log %q, want %q", got, want)
	}
}

func TestWatchPicksUpChangedFiles(t *testing.T) {
	ca := testtls.NewCA(t, "test CA")
	dir := t.TempDir()
	first := ca.Issue(t)
	r := mustNew(t, first, dir)
	addr := mustServe(t, r)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Watch(ctx, 50*time.Millisecond)

	// Replace the certificate first, then the key, as two renames: in
	// between, the pair does not match, and the old one must stay.
	second := ca.Issue(t)
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), second.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := servedSerial(t, ca, addr); got.Cmp(first.Serial) != 0 {
		t.Fatalf("with a half-replaced pair: got serial %s, want the old %s", got, first.Serial)
	}
	second.Write(t, dir)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := servedSerial(t, ca, addr)
		if got.Cmp(second.Serial) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the files changed: got serial %s, want %s", got, second.Serial)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
