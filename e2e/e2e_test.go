package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trail-audit/trail/deploy"
	"github.com/trail-audit/trail/internal/testmongo"
	"github.com/trail-audit/trail/internal/testserver"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestMain(m *testing.M) { testserver.Main(m) }

var ferretProgram = testserver.Program{Name: "ferretdb", Dir: filepath.Join("..", "tools", "ferretdb"), Pkg: ".",
	// The flags of scripts/test.sh, so that its build cache serves.
	Flags: []string{"-mod=readonly", "-trimpath", "-buildvcs=false"}}

// ferretBinary returns the FerretDB wrapper: $TRAIL_TEST_FERRETDB_BIN, or,
// outside CI, one built from tools/ferretdb (minutes when cold).
func ferretBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("TRAIL_TEST_FERRETDB_BIN"); p != "" {
		return p
	}
	if ci() {
		tb.Fatal("TRAIL_TEST_FERRETDB_BIN is not set, and CI=true: the MongoDB outage test must run in CI (scripts/test.sh sets it)")
	}
	bin, err := ferretProgram.Build()
	if err != nil {
		tb.Skipf("TRAIL_TEST_FERRETDB_BIN is not set and building tools/ferretdb failed: %v", err)
	}
	return bin
}

func ci() bool { return os.Getenv("CI") == "true" }

// nginxBinary returns the nginx binary, or skips (fails with CI=true).
func nginxBinary(tb testing.TB) string {
	tb.Helper()
	bin := deploy.NginxBinary()
	if bin == "" {
		if ci() {
			tb.Fatal("nginx is not installed, and CI=true: the scale-out test must run in CI (apt-get install -y nginx)")
		}
		tb.Skip("nginx is not installed (apt-get install -y nginx); skipping")
	}
	return bin
}

// MustOpenDB returns the URI of a fresh database on the MongoDB test server
// (dropped at the end of the test), and that database through the driver.
func MustOpenDB(tb testing.TB) (string, *mongo.Database) {
	tb.Helper()
	uri := testmongo.DatabaseURI(tb)
	return uri, MustConnect(tb, uri)
}

// MustConnect returns the database of uri through the driver, which is
// disconnected at the end of the test.
func MustConnect(tb testing.TB, uri string) *mongo.Database {
	tb.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		tb.Fatalf("MongoDB URI %q: %v", uri, err)
	}
	cl, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		tb.Fatalf("connect to %s: %v", uri, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cl.Disconnect(ctx)
	})
	return cl.Database(strings.TrimPrefix(u.Path, "/"))
}

// A proc is a child process of the test. The test's cleanup stops it by
// its PID, and prints the end of its log if the test failed.
type proc struct {
	name    string
	cmd     *exec.Cmd
	stdout  *testserver.Buffer
	logPath string // stderr
	done    chan struct{}
	err     error // from Wait, once done is closed
}

// startProc starts bin with args; its stderr goes to dir/name.log.
func startProc(tb testing.TB, name, dir, bin string, args ...string) *proc {
	tb.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	p := &proc{name: name, stdout: &testserver.Buffer{}, logPath: logPath, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = testserver.ChildEnv()
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = logf
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("the end of %s's log (%s):\n%s", name, logPath, p.logTail(40))
		}
	})
	return p
}

// Pid returns the process id.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool { return closed(p.done) }

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Kill stops the process at once with SIGKILL, as a crash would.
func (p *proc) Kill() {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// Stop asks the process to stop (SIGTERM) and kills it after 20s.
func (p *proc) Stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.Kill()
	}
}

func (p *proc) logTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// A trailProc is a running trail serve.
type trailProc struct {
	*proc
	URL  string // http://host:port
	Addr string // host:port
}

// startTrail runs trail with args (which start with "serve") and waits
// until it listens.
func startTrail(tb testing.TB, name, dir string, args ...string) *trailProc {
	tb.Helper()
	p := startProc(tb, name, dir, testserver.TrailBinary(tb), args...)
	u, err := p.stdout.Await("listening on ", p.done, 60*time.Second)
	if err != nil {
		tb.Fatalf("%s %v (exit: %v); its log:\n%s", name, err, p.err, p.logTail(40))
	}
	return &trailProc{proc: p, URL: u, Addr: strings.TrimPrefix(u, "http://")}
}

// serveArgs are the flags of a trail replica on MongoDB at uri.
func serveArgs(addr, uri, keyFile string, extra ...string) []string {
	return append([]string{"serve", "--addr", addr, "--store", uri, "--key-file", keyFile,
		"--origin", "e2e.test", "--checkpoint-interval", "200ms", "--shutdown-timeout", "10s",
		"--log-format", "json"}, extra...)
}

// A ferret is a FerretDB server of the test's own.
type ferret struct {
	*proc
	Addr string // host:port
	URI  string // mongodb://host:port/
}

// startFerret starts the FerretDB wrapper on addr (port 0 picks one) with
// its data in dataDir, and waits until it accepts connections.
func startFerret(tb testing.TB, name, bin, dataDir, addr string) *ferret {
	tb.Helper()
	uriFile := filepath.Join(tb.TempDir(), "uri")
	p := startProc(tb, name, filepath.Dir(uriFile), bin, "-listen", addr, "-dir", dataDir, "-uri-file", uriFile)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(uriFile); err == nil && len(b) > 0 {
			uri := strings.TrimSpace(string(b))
			u, err := url.Parse(uri)
			if err != nil {
				tb.Fatalf("%s wrote a bad URI %q: %v", name, uri, err)
			}
			if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
				c.Close()
				return &ferret{proc: p, Addr: u.Host, URI: uri}
			}
		}
		if p.exited() {
			tb.Fatalf("%s exited before listening (%v); its log:\n%s", name, p.err, p.logTail(40))
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not listen within 30s; its log:\n%s", name, p.logTail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withDB returns uri (mongodb://host:port/) with the database db.
func withDB(tb testing.TB, uri, db string) string {
	tb.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

// logDoc is a log's lease and head document in the logs collection of the
// MongoDB store (see mongo/mongo.go).
type logDoc struct {
	ID        string      `bson:"_id"`
	Owner     string      `bson:"owner"`
	Expires   time.Time   `bson:"expires"`
	Committed int64       `bson:"committed"`
	Pending   *pendingDoc `bson:"pending"`
	Sealed    bool        `bson:"sealed"`
}

// pendingDoc names the batch a log's writer is storing past its committed
// size.
type pendingDoc struct {
	First int64 `bson:"first"`
	N     int64 `bson:"n"`
}

// readLogs returns every log document, by name.
func readLogs(tb testing.TB, db *mongo.Database) []logDoc {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cur, err := db.Collection("logs").Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		tb.Fatalf("read logs: %v", err)
	}
	var docs []logDoc
	if err := cur.All(ctx, &docs); err != nil {
		tb.Fatalf("read logs: %v", err)
	}
	return docs
}

// ownerPrefix is how the MongoDB store names the process pid in a lease:
// "<hostname>:<pid>/<random>".
func ownerPrefix(pid int) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d/", host, pid)
}

// ownedLog returns the log whose lease the process pid holds.
func ownedLog(tb testing.TB, db *mongo.Database, pid int) logDoc {
	tb.Helper()
	for _, d := range readLogs(tb, db) {
		if strings.HasPrefix(d.Owner, ownerPrefix(pid)) {
			return d
		}
	}
	tb.Fatalf("no log is owned by pid %d: %+v", pid, readLogs(tb, db))
	return logDoc{}
}

// runTrail runs the trail CLI and returns its exit code and output.
func runTrail(tb testing.TB, args ...string) (int, string) {
	tb.Helper()
	cmd := exec.Command(testserver.TrailBinary(tb), args...)
	cmd.Env = testserver.ChildEnv()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		tb.Fatalf("run trail %s: %v", strings.Join(args, " "), err)
	}
	return 0, string(out)
}

// verifyLog runs trail verify on one log of the server at url and returns
// its exit code and output.
func verifyLog(tb testing.TB, url, keyFile, log string) (int, string) {
	tb.Helper()
	state := filepath.Join(tb.TempDir(), "verify-state.json")
	return runTrail(tb, "verify", "--url", url, "--key-file", keyFile, "--state", state, "--log", log, "--wait", "10s")
}

// waitFor polls cond every 20ms until it holds, and fails the test after
// limit, saying what it waited for.
func waitFor(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
