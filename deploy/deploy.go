// Package deploy holds trail's deployment files: the Dockerfile, the Compose
// files, the MongoDB cluster set-up (mongo-init.js) and the NGINX
// configuration.
//
// The NGINX configuration has one source, nginx.conf.tmpl. This package
// renders it for the Compose deployment (nginx.conf, checked in and compared
// by the tests) and for tests that run the real nginx in front of trail
// replicas on loopback ports (StartNginx), so that the configuration the
// tests exercise is the one that gets deployed.
package deploy

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"
)

//go:embed nginx.conf.tmpl
var nginxTemplate string

var nginxTmpl = template.Must(template.New("nginx.conf").Parse(nginxTemplate))

// Nginx holds the settings that differ between the places trail's NGINX
// configuration runs; everything else is fixed in nginx.conf.tmpl.
type Nginx struct {
	// Listen is the address of the server block ("80", "127.0.0.1:8081").
	Listen string
	// Upstreams are the host:port addresses of the trail replicas.
	Upstreams []string
	// Resolver, if set, is a DNS server that NGINX asks again for the
	// upstreams' addresses while it runs (NGINX 1.27.3 or later), so that a
	// recreated replica with a new address is found.
	Resolver string

	PIDFile   string
	ErrorLog  string // a path, or "stderr"
	AccessLog string // a path, or "off"
	TempDir   string // parent of NGINX's request and response temp dirs
	CacheDir  string // the proxy_cache of GET /logs/{id}
	CacheSize string // the cache's max_size ("1g")
	// User is the user directive; empty omits it (as a non-root master needs).
	User string
	// Generated adds a "do not edit" note to the rendered file.
	Generated bool
}

// ComposeNginx returns the settings of deploy/nginx.conf, which
// compose.sharded.yaml mounts into the official nginx image in front of the
// replicas trail-1 and trail-2.
func ComposeNginx() *Nginx {
	return &Nginx{
		Listen:    "80",
		Upstreams: []string{"trail-1:8080", "trail-2:8080"},
		Resolver:  "127.0.0.11", // Docker's embedded DNS
		PIDFile:   "/var/run/nginx.pid",
		ErrorLog:  "stderr",
		AccessLog: "/dev/stdout",
		TempDir:   "/var/cache/nginx",
		CacheDir:  "/var/cache/nginx/trail",
		CacheSize: "1g",
		User:      "nginx",
		Generated: true,
	}
}

// LocalNginx returns settings for an nginx that keeps every file it writes
// under dir and listens on listen, a loopback host:port, in front of the
// upstreams. It runs as any user: as root (CI) its workers stay root, since
// they must write under dir, which only its owner can enter.
func LocalNginx(dir, listen string, upstreams ...string) *Nginx {
	n := &Nginx{
		Listen:    listen,
		Upstreams: upstreams,
		PIDFile:   filepath.Join(dir, "nginx.pid"),
		ErrorLog:  filepath.Join(dir, "error.log"),
		AccessLog: filepath.Join(dir, "access.log"),
		TempDir:   filepath.Join(dir, "temp"),
		CacheDir:  filepath.Join(dir, "cache"),
		CacheSize: "64m",
	}
	if os.Geteuid() == 0 {
		n.User = "root"
	}
	return n
}

// Render returns the NGINX configuration for n.
func (n *Nginx) Render() ([]byte, error) {
	if len(n.Upstreams) == 0 {
		return nil, errors.New("deploy: render nginx.conf: no upstreams")
	}
	var buf bytes.Buffer
	if err := nginxTmpl.Execute(&buf, n); err != nil {
		return nil, fmt.Errorf("deploy: render nginx.conf: %w", err)
	}
	return buf.Bytes(), nil
}

// NginxBinary returns the nginx binary for tests: $TRAIL_TEST_NGINX (which
// scripts/test.sh sets), else nginx on PATH, else /usr/sbin/nginx. It
// returns "" if there is none.
func NginxBinary() string {
	if p := os.Getenv("TRAIL_TEST_NGINX"); p != "" {
		return p
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return ""
}

// An NginxProcess is an nginx started by StartNginx.
type NginxProcess struct {
	// Addr is the host:port it listens on.
	Addr string
	// Dir holds its configuration, logs, temp files and cache.
	Dir string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // of cmd.Wait, once done is closed
}

// StartNginx starts bin (see NginxBinary) in the foreground with the
// LocalNginx configuration, all of its files under dir, in front of the
// upstreams, and returns once it accepts connections. listen is a loopback
// host:port; port 0 picks a free one. The caller must Stop it.
func StartNginx(bin, dir, listen string, upstreams ...string) (*NginxProcess, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("deploy: start nginx: %w", err)
	}
	// NGINX cannot report a port it chose, so pick one here. Another
	// process may take it in between; then try again with another.
	var lastErr error
	for range 5 {
		addr := listen
		if port == "0" {
			if addr, err = freePort(host); err != nil {
				return nil, fmt.Errorf("deploy: start nginx: %w", err)
			}
		}
		p, err := startNginx(bin, dir, addr, upstreams)
		if err == nil {
			return p, nil
		}
		lastErr = err
		if port != "0" || !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	return nil, lastErr
}

func startNginx(bin, dir, addr string, upstreams []string) (*NginxProcess, error) {
	n := LocalNginx(dir, addr, upstreams...)
	conf, err := n.Render()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{n.TempDir, n.CacheDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("deploy: start nginx: %w", err)
		}
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return nil, fmt.Errorf("deploy: start nginx: %w", err)
	}
	os.Remove(n.ErrorLog) // a retry reads only its own errors
	// -e sends the errors NGINX meets before it reads error_log from the
	// configuration to dir too, not to /var/log/nginx, which a non-root
	// user cannot write.
	cmd := exec.Command(bin, "-e", n.ErrorLog, "-p", dir, "-c", confPath, "-g", "daemon off;")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // to stop its workers too
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("deploy: start nginx: %w", err)
	}
	p := &NginxProcess{Addr: addr, Dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("deploy: start nginx: exited (%v): %s", p.err, p.ErrorLog())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("deploy: start nginx: not listening on %s after 30s: %s", addr, p.ErrorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ErrorLog returns what nginx has written to its error log, for test
// failure messages.
func (p *NginxProcess) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "error.log"))
	return strings.TrimSpace(string(b))
}

// Stop stops nginx and its workers: gracefully, then by force after 10s. It
// is safe to call more than once.
func (p *NginxProcess) Stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGQUIT) // graceful: finish the requests in flight
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	return nil
}

// freePort returns host:port with a port that was free a moment ago.
func freePort(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
