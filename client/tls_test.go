package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/testtls"
)

// MustOpenTLSServer serves a real trail server over HTTPS on loopback, with
// a certificate from a new private CA, and returns its URL and the CA.
func MustOpenTLSServer(tb testing.TB) (string, *testtls.CA) {
	tb.Helper()
	s := MustOpenServer(tb, nil)
	ca := testtls.NewCA(tb, "client test CA")
	leaf := ca.Issue(tb)
	pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s.Config.Handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv.URL, ca
}

func TestCAFile(t *testing.T) {
	url, ca := MustOpenTLSServer(t)
	caFile := ca.WriteCA(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c := client.New(url, client.WithCAFile(caFile))
	res, err := c.Push(ctx, newEvent("tls.pushed"))
	if err != nil {
		t.Fatalf("push over HTTPS with the CA file: %v", err)
	}
	if _, _, err := c.Get(ctx, res.Receipts[0].ID); err != nil {
		t.Fatalf("get over HTTPS with the CA file: %v", err)
	}

	// WithTLSConfig with the same CA works too, and WithCAFile fills in
	// the roots of a WithTLSConfig given after it.
	if err := client.New(url, client.WithTLSConfig(&tls.Config{RootCAs: ca.Pool()})).Health(ctx); err != nil {
		t.Fatalf("health over HTTPS with WithTLSConfig: %v", err)
	}
	if err := client.New(url, client.WithCAFile(caFile), client.WithTLSConfig(&tls.Config{})).Health(ctx); err != nil {
		t.Fatalf("health over HTTPS with WithCAFile, then WithTLSConfig: %v", err)
	}
}

func TestUntrustedServerFailsFast(t *testing.T) {
	url, _ := MustOpenTLSServer(t)
	other := testtls.NewCA(t, "another CA")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, opts := range map[string][]client.Option{
		"system roots": nil,
		"another CA":   {client.WithCAFile(other.WriteCA(t, t.TempDir()))},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			// Default retries and backoff: a certificate error must not be
			// retried, since trying again cannot cure it.
			err := client.New(url, opts...).Health(ctx)
			var cve *tls.CertificateVerificationError
			if !errors.As(err, &cve) || !strings.Contains(err.Error(), "--ca-file") {
				t.Fatalf("got %v, want a certificate verification error that mentions --ca-file", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("got an answer after %s, want it at once (no retries)", d)
			}
		})
	}
}

func TestCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.pem"), "missing.pem"},
		{notPEM, "holds no PEM certificate"},
	} {
		err := client.New("https://127.0.0.1:1", client.WithCAFile(tc.path)).Health(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WithCAFile(%s): got %v, want an error containing %q", tc.path, err, tc.want)
		}
	}
	// A transport the client cannot configure is an error, not a CA
	// silently ignored.
	hc := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("unreachable") })}
	err := client.New("https://127.0.0.1:1", client.WithHTTPClient(hc), client.WithTLSConfig(&tls.Config{})).Health(context.Background())
	if err == nil || !strings.Contains(err.Error(), "http.Transport") {
		t.Errorf("WithTLSConfig over a custom RoundTripper: got %v, want an error naming http.Transport", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
