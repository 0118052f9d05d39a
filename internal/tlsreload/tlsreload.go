// Package tlsreload serves a PEM certificate and key pair to a TLS server
// and replaces it, without a restart, when the files change or when asked
// (trail serve asks on SIGHUP).
//
// A renewal tool (certbot, cert-manager, a cron job) rewrites the files
// while connections are being accepted. Every handshake reads the current
// pair through tls.Config.GetCertificate, so a new pair is used from the
// next handshake on, and connections already open keep theirs. A pair that
// fails to load (a half-written file, a key that does not match) is logged
// and ignored: the server keeps the last good pair rather than refusing
// every handshake.
package tlsreload

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often Watch looks at the files.
const DefaultInterval = time.Second

// A Reloader holds the current certificate of a TLS server. It is safe for
// concurrent use.
type Reloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	cert atomic.Pointer[tls.Certificate]

	mu    sync.Mutex // serializes loads, so that stamp matches cert
	stamp stamp      // the files as of the last load attempt
}

// stamp identifies a version of the two files without reading them.
type stamp struct {
	cert, key fileStamp
}

type fileStamp struct {
	modTime int64 // nanoseconds: time.Time's == would compare locations too
	size    int64
	ok      bool
}

func statFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{modTime: fi.ModTime().UnixNano(), size: fi.Size(), ok: true}
}

func (r *Reloader) statFiles() stamp {
	return stamp{cert: statFile(r.certFile), key: statFile(r.keyFile)}
}

// New loads the pair from certFile and keyFile (PEM; the certificate file
// may hold the chain after the leaf). Unlike a reload, a failure here is
// an error: a server must not start without a certificate. A nil logger
// discards the reload messages.
func New(certFile, keyFile string, logger *slog.Logger) (*Reloader, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tlsreload: both a certificate file and a key file are needed")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, logger: logger}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stamp = r.statFiles()
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert.Store(cert)
	r.logLoaded(cert)
	return r, nil
}

func (r *Reloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsreload: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	return &cert, nil
}

// Reload reads the files again and, if they hold a valid pair, serves it
// from the next handshake on. On an error the current pair stays, and the
// error is logged and returned.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked(r.statFiles())
}

func (r *Reloader) reloadLocked(now stamp) error {
	r.stamp = now
	cert, err := r.load()
	if err != nil {
		r.logger.Error("tls: certificate reload failed; still serving the previous certificate", "err", err)
		return err
	}
	r.cert.Store(cert)
	r.logLoaded(cert)
	return nil
}

// logLoaded logs what is now served, with its expiry, so that an operator
// can see a renewal arrive; a certificate that clients will refuse for its
// dates is served anyway (the files are the operator's choice) but warned
// about.
func (r *Reloader) logLoaded(cert *tls.Certificate) {
	leaf := cert.Leaf
	attrs := []any{"file", r.certFile, "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		r.logger.Warn("tls: certificate loaded, but it has expired; clients will refuse it", attrs...)
	case now.Before(leaf.NotBefore):
		r.logger.Warn("tls: certificate loaded, but it is not valid yet; clients will refuse it", attrs...)
	default:
		r.logger.Info("tls: certificate loaded", attrs...)
	}
}

// reloadIfChanged reloads when either file's modification time or size
// differs from the last attempt. A failed attempt is not retried until the
// files change again, so a broken pair is logged once, not every second;
// a renewal that replaces the two files one after the other changes the
// second file too, and that change loads the complete pair.
func (r *Reloader) reloadIfChanged() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.statFiles(); now != r.stamp {
		r.reloadLocked(now)
	}
}

// Watch checks the files every interval (DefaultInterval if not positive)
// and reloads them when they change, until ctx is done. Polling needs no
// inotify and sees a file replaced by rename, which is how careful tools
// write certificates.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.reloadIfChanged()
		}
	}
}

// Certificate returns the pair served now. Its Leaf is parsed.
func (r *Reloader) Certificate() *tls.Certificate {
	return r.cert.Load()
}

// GetCertificate is the tls.Config hook that serves the current pair.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// ServerConfig returns a server configuration that serves the current pair
// and accepts TLS 1.2 and later only. It offers HTTP/2 before HTTP/1.1:
// gRPC needs HTTP/2, and http.Server uses the configuration as given.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}
