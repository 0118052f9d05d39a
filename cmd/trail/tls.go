package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/tlsreload"
)

// caFileFlag declares --ca-file, for every command that talks to a server.
func caFileFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "ca-file", "", "trust only the CAs in this PEM `file` for an https:// --url (a private CA; default: the system's roots)")
}

// caFileOption is the client option for a --ca-file value.
func caFileOption(path string) []client.Option {
	if path == "" {
		return nil
	}
	return []client.Option{client.WithCAFile(path)}
}

// tlsFlags are trail serve's TLS settings.
type tlsFlags struct {
	cert, key string
	interval  time.Duration
}

func (f *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", "", "serve HTTPS with the certificate (and chain) in this PEM `file`; reloaded on SIGHUP and when it changes")
	fs.StringVar(&f.key, "tls-key", "", "the private key of --tls-cert, a PEM `file`")
	fs.DurationVar(&f.interval, "tls-reload-interval", tlsreload.DefaultInterval, "how often to look for a renewed --tls-cert or --tls-key (0: only on SIGHUP)")
}

func (f *tlsFlags) validate() error {
	if (f.cert == "") != (f.key == "") {
		return usageError{errors.New("--tls-cert and --tls-key go together: give both (HTTPS) or neither (HTTP)")}
	}
	return nonNegative("tls-reload-interval", f.interval)
}

// startTLS loads the certificate named by f and keeps it current until ctx
// is done: on SIGHUP, and when its files change. It returns a nil
// configuration when f names no certificate. A renewal that fails to load
// leaves the last good certificate in service, so that a bad renewal shows
// up in the log rather than as an outage.
func startTLS(ctx context.Context, f *tlsFlags, logger *slog.Logger) (*tls.Config, error) {
	if f.cert == "" {
		return nil, nil
	}
	r, err := tlsreload.New(f.cert, f.key, logger)
	if err != nil {
		return nil, fmt.Errorf("serve: %w; check --tls-cert and --tls-key (TRAIL_TLS_CERT, TRAIL_TLS_KEY)", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("tls: SIGHUP: reloading the certificate")
				r.Reload()
			}
		}
	}()
	if f.interval > 0 {
		go r.Watch(ctx, f.interval)
	}
	return r.ServerConfig(), nil
}

// serveHTTP serves srv on ln, over TLS if srv has a TLS configuration.
func serveHTTP(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// baseURL is the URL that reaches ln.
func baseURL(ln net.Listener, tlsConfig *tls.Config) string {
	if tlsConfig != nil {
		return "https://" + ln.Addr().String()
	}
	return "http://" + ln.Addr().String()
}
