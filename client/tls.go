package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// WithTLSConfig makes the client use cfg for https:// servers: to trust a
// private CA (RootCAs), or to present a client certificate. It applies to
// the client's own transport, and to the transport of a WithHTTPClient
// client if that is an *http.Transport (which is then copied, not changed).
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) { c.tlsConfig = cfg.Clone() }
}

// WithCAFile makes the client trust only the certificate authorities in
// the PEM file at path, as curl's --cacert does: for a server whose
// certificate a private CA issued. If the file cannot be read or holds no
// certificate, every request returns that error. With WithTLSConfig too,
// in either order, the file sets that configuration's RootCAs.
func WithCAFile(path string) Option {
	return func(c *Client) {
		pool, err := loadCAFile(path)
		if err != nil {
			c.optErr = err
			return
		}
		c.caPool = pool
	}
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trail client: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("trail client: CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// applyTLS puts the TLS options into c's transport.
func (c *Client) applyTLS() error {
	rt := c.hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return errors.New("trail client: WithTLSConfig or WithCAFile needs an *http.Transport; configure TLS on the http.Client given to WithHTTPClient instead")
	}
	t = t.Clone()
	cfg := c.tlsConfig
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if c.caPool != nil {
		cfg.RootCAs = c.caPool
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	t.TLSClientConfig = cfg
	hc := *c.hc
	hc.Transport = t
	c.hc = &hc
	return nil
}

// tlsFailure reports whether err is a TLS failure that trying again cannot
// cure: a certificate the client does not trust, a server that refused the
// handshake, or a server that does not speak TLS at all.
func tlsFailure(err error) bool {
	var cve *tls.CertificateVerificationError
	var rhe tls.RecordHeaderError
	var ae tls.AlertError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cve) || errors.As(err, &rhe) || errors.As(err, &ae) ||
		errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) ||
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// tlsHint adds what to do about a certificate the client does not trust.
func tlsHint(err error) string {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return " (if a private CA issued the server's certificate, trust it with --ca-file or client.WithCAFile)"
	}
	return ""
}
