package deploy_test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/trail-audit/trail/deploy"
)

var update = flag.Bool("update", false, "rewrite deploy/nginx.conf from nginx.conf.tmpl")

// inCI reports whether a missing tool must fail the test rather than skip it.
func inCI() bool { return os.Getenv("CI") == "true" }

// MustLookTool returns the path of a tool the test needs. It skips the test
// when the tool is missing, or fails it under CI=true.
func MustLookTool(tb testing.TB, path, install string) string {
	tb.Helper()
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	msg := fmt.Sprintf("%s is not installed (%s)", filepath.Base(install), install)
	if inCI() {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

func lookPath(name string) string {
	p, _ := exec.LookPath(name)
	return p
}

// composeEnv is the environment the sharded compose file needs.
var composeEnv = []string{
	"TRAIL_ADMIN_PASSWORD=admin-secret",
	"TRAIL_PRODUCER_PASSWORD=producer-secret",
	"TRAIL_AUDITOR_PASSWORD=auditor-secret",
}

func composeCmd(bin, file string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, append([]string{"-f", file}, args...)...)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "TRAIL_")
	}), env...)
	return cmd
}

func TestComposeConfig(t *testing.T) {
	bin := MustLookTool(t, lookPath("docker-compose"), "apt-get install -y --no-install-recommends docker-compose")
	tests := []struct {
		file     string
		services []string
	}{
		{"compose.yaml", []string{"trail"}},
		{"compose.sharded.yaml", []string{
			"cfg-1", "cfg-2", "cfg-3",
			"mongo-init", "mongo-keyfile", "mongos", "nginx",
			"shard1-1", "shard1-2", "shard1-3",
			"shard2-1", "shard2-2", "shard2-3",
			"trail-1", "trail-2", "trail-keygen",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			out, err := composeCmd(bin, tt.file, composeEnv, "config", "-q").CombinedOutput()
			if err != nil {
				t.Fatalf("docker-compose -f %s config -q: %v\n%s", tt.file, err, out)
			}
			out, err = composeCmd(bin, tt.file, composeEnv, "config", "--services").Output()
			if err != nil {
				t.Fatalf("docker-compose -f %s config --services: %v", tt.file, err)
			}
			got := strings.Fields(string(out))
			slices.Sort(got)
			if !slices.Equal(got, tt.services) {
				t.Errorf("services: got %v, want %v", got, tt.services)
			}
		})
	}

	t.Run("sharded without passwords", func(t *testing.T) {
		out, err := composeCmd(bin, "compose.sharded.yaml", nil, "config", "-q").CombinedOutput()
		if err == nil {
			t.Fatal("got success, want an error naming the missing password")
		}
		if !bytes.Contains(out, []byte("TRAIL_")) || !bytes.Contains(out, []byte("PASSWORD")) {
			t.Errorf("got %q, want it to name the missing TRAIL_*_PASSWORD", out)
		}
	})

	t.Run("sharded trail replicas use mongos as trail-producer", func(t *testing.T) {
		out, err := composeCmd(bin, "compose.sharded.yaml", composeEnv, "config").Output()
		if err != nil {
			t.Fatalf("docker-compose config: %v", err)
		}
		want := "mongodb://trail-producer:producer-secret@mongos:27017/trail?authSource=admin"
		if n := strings.Count(string(out), want); n != 2 {
			t.Errorf("TRAIL_STORE %s: got %d services, want 2", want, n)
		}
	})
}

func TestNginxConfGenerated(t *testing.T) {
	want, err := deploy.ComposeNginx().Render()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("nginx.conf", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("deploy/nginx.conf differs from nginx.conf.tmpl rendered with ComposeNginx(); run: go test ./deploy -run TestNginxConfGenerated -update")
	}
	for _, s := range []string{"client_max_body_size 10m;", "server trail-1:8080", "server trail-2:8080", "proxy_cache trail_records;"} {
		if !bytes.Contains(got, []byte(s)) {
			t.Errorf("deploy/nginx.conf: got no %q, want it", s)
		}
	}
	// Only the GET /logs/{id} location may cache.
	if n := bytes.Count(got, []byte("proxy_cache trail_records;")); n != 1 {
		t.Errorf("proxy_cache directives: got %d, want 1", n)
	}
}

// TestNginxSyntax checks the configuration with nginx -t. The compose
// variant names upstream hosts that only Docker's DNS resolves, so this
// checks the loopback variant of the same template.
func TestNginxSyntax(t *testing.T) {
	bin := MustLookTool(t, deploy.NginxBinary(), "apt-get install -y nginx")
	dir := t.TempDir()
	conf, err := deploy.LocalNginx(dir, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3").Render()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"temp", "cache"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(bin, "-e", filepath.Join(dir, "error.log"), "-t", "-p", dir, "-c", path).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("test is successful")) {
		t.Errorf("nginx -t: got %q, want it to say the test is successful", out)
	}
}

// upstream is a stand-in trail replica that counts the requests it gets.
type upstream struct {
	name string
	srv  *httptest.Server

	mu        sync.Mutex
	hits      map[string]int // by "METHOD path"
	requestID []string
	bodyLen   []int
}

func newUpstream(t *testing.T, name string) *upstream {
	u := &upstream{name: name, hits: map[string]int{}}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.hits[r.Method+" "+r.URL.Path]++
	u.requestID = append(u.requestID, r.Header.Get("X-Request-Id"))
	u.bodyLen = append(u.bodyLen, len(body))
	u.mu.Unlock()
	w.Header().Set("X-Upstream", u.name)
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/logs/r1":
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", `"leaf-hash-of-r1"`)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"r1","log":"a","seq":0}`)
	case r.Method == http.MethodGet && r.URL.Path == "/logs/missing":
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"status":404,"code":"ENOTFOUND"}`)
	case r.URL.Path == "/logs/r1":
		w.Header().Set("Allow", "GET, HEAD")
		w.WriteHeader(http.StatusMethodNotAllowed)
	case r.Method == http.MethodPost && r.URL.Path == "/logs" && r.Header.Get("X-Test-Overload") != "":
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":503,"code":"EUNAVAILABLE"}`)
	case r.Method == http.MethodPost && r.URL.Path == "/logs":
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"received":%d}`, len(body))
	default:
		io.WriteString(w, `{"events":[],"next":null}`)
	}
}

func (u *upstream) count(key string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[key]
}

// MustStartNginx starts the real nginx in front of the upstreams, with
// the configuration that deploy/nginx.conf is rendered from.
func MustStartNginx(tb testing.TB, upstreams ...*upstream) *deploy.NginxProcess {
	tb.Helper()
	bin := MustLookTool(tb, deploy.NginxBinary(), "apt-get install -y nginx")
	var addrs []string
	for _, u := range upstreams {
		addrs = append(addrs, u.srv.Listener.Addr().String())
	}
	p, err := deploy.StartNginx(bin, tb.TempDir(), "127.0.0.1:0", addrs...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("nginx error log:\n%s", p.ErrorLog())
		}
	})
	return p
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(tb testing.TB, method, url string, body []byte, header ...string) response {
	tb.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func TestNginxProxy(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	ngx := MustStartNginx(t, a, b)
	base := "http://" + ngx.Addr
	hits := func(key string) int { return a.count(key) + b.count(key) }

	t.Run("GET /logs/{id} is cached", func(t *testing.T) {
		first := do(t, "GET", base+"/logs/r1", nil)
		second := do(t, "GET", base+"/logs/r1", nil)
		for i, r := range []response{first, second} {
			if r.status != http.StatusOK || r.body != `{"id":"r1","log":"a","seq":0}` {
				t.Errorf("GET %d: got %d %q, want 200 and the record", i+1, r.status, r.body)
			}
		}
		if got := second.header.Get("X-Cache-Status"); got != "HIT" {
			t.Errorf("second GET: X-Cache-Status got %q, want HIT", got)
		}
		if got := second.header.Get("ETag"); got != `"leaf-hash-of-r1"` {
			t.Errorf("second GET: ETag got %q, want the upstream's", got)
		}
		if got := hits("GET /logs/r1"); got != 1 {
			t.Errorf("upstream GETs of /logs/r1: got %d, want 1", got)
		}
		if got := do(t, "HEAD", base+"/logs/r1", nil); got.status != http.StatusOK {
			t.Errorf("HEAD: got %d, want 200", got.status)
		}
		if got := hits("GET /logs/r1") + hits("HEAD /logs/r1"); got != 1 {
			t.Errorf("upstream requests for /logs/r1 after HEAD: got %d, want 1 (from cache)", got)
		}
	})

	t.Run("other methods on /logs/{id} are not served from the cache", func(t *testing.T) {
		for _, m := range []string{"PUT", "PATCH", "DELETE"} {
			r := do(t, m, base+"/logs/r1", []byte(`{}`))
			if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") == "" {
				t.Errorf("%s: got %d Allow=%q, want 405 with Allow", m, r.status, r.header.Get("Allow"))
			}
			if got := hits(m + " /logs/r1"); got != 1 {
				t.Errorf("upstream %s requests: got %d, want 1", m, got)
			}
		}
	})

	t.Run("a missing record is not cached", func(t *testing.T) {
		for range 2 {
			if r := do(t, "GET", base+"/logs/missing", nil); r.status != http.StatusNotFound {
				t.Errorf("got %d, want 404", r.status)
			}
		}
		if got := hits("GET /logs/missing"); got != 2 {
			t.Errorf("upstream GETs of /logs/missing: got %d, want 2", got)
		}
	})

	t.Run("nothing else is cached", func(t *testing.T) {
		for _, path := range []string{"/logs?limit=1", "/checkpoint", "/logs/r1/proof?size=1", "/readyz"} {
			key := "GET " + strings.SplitN(path, "?", 2)[0]
			before := hits(key)
			for range 2 {
				if r := do(t, "GET", base+path, nil); r.status != http.StatusOK {
					t.Errorf("GET %s: got %d, want 200", path, r.status)
				}
			}
			if got := hits(key) - before; got != 2 {
				t.Errorf("upstream GETs of %s: got %d, want 2", path, got)
			}
		}
	})

	t.Run("requests reach both replicas", func(t *testing.T) {
		for range 10 {
			do(t, "GET", base+"/checkpoint", nil)
		}
		if a.count("GET /checkpoint") == 0 || b.count("GET /checkpoint") == 0 {
			t.Errorf("GET /checkpoint: got %d on a and %d on b, want some on each",
				a.count("GET /checkpoint"), b.count("GET /checkpoint"))
		}
	})

	t.Run("503 and Retry-After pass through", func(t *testing.T) {
		r := do(t, "POST", base+"/logs", []byte(`{"action":"a.b"}`), "X-Test-Overload", "1")
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "7" {
			t.Errorf("got %d Retry-After=%q, want 503 with the upstream's Retry-After 7", r.status, r.header.Get("Retry-After"))
		}
		if !strings.Contains(r.body, "EUNAVAILABLE") {
			t.Errorf("body: got %q, want the upstream's problem", r.body)
		}
	})

	t.Run("request ids", func(t *testing.T) {
		do(t, "POST", base+"/logs", []byte(`{}`), "X-Request-Id", "req-from-client")
		do(t, "POST", base+"/logs", []byte(`{}`))
		var ids []string
		for _, u := range []*upstream{a, b} {
			u.mu.Lock()
			ids = append(ids, u.requestID...)
			u.mu.Unlock()
		}
		if !slices.Contains(ids, "req-from-client") {
			t.Errorf("got request ids %q, want the client's to reach the upstream", ids)
		}
		hex := regexp.MustCompile(`^[0-9a-f]{32}$`)
		if !slices.ContainsFunc(ids, hex.MatchString) {
			t.Errorf("got request ids %q, want NGINX to make one up when the client sends none", ids)
		}
	})

	t.Run("body limit is 10 MiB", func(t *testing.T) {
		body := bytes.Repeat([]byte("x"), 10<<20)
		if r := do(t, "POST", base+"/logs", body); r.status != http.StatusCreated || r.body != fmt.Sprintf(`{"received":%d}`, len(body)) {
			t.Errorf("10 MiB: got %d %q, want 201 with the whole body received", r.status, r.body)
		}
		before := hits("POST /logs")
		r := do(t, "POST", base+"/logs", append(body, 'x'))
		if r.status != http.StatusRequestEntityTooLarge || r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("10 MiB + 1: got %d %q, want 413 problem+json", r.status, r.header.Get("Content-Type"))
		}
		var p struct{ Code string }
		if err := json.Unmarshal([]byte(r.body), &p); err != nil || p.Code != "ETOOLARGE" {
			t.Errorf("10 MiB + 1: got body %q, want a problem with code ETOOLARGE", r.body)
		}
		if got := hits("POST /logs") - before; got != 0 {
			t.Errorf("upstream POSTs: got %d, want 0", got)
		}
	})

	t.Run("no replica reachable", func(t *testing.T) {
		a.srv.Close()
		b.srv.Close()
		r := do(t, "POST", base+"/logs", []byte(`{"action":"a.b"}`))
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("POST: got %d Retry-After=%q, want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
		}
		var p struct{ Code string }
		if err := json.Unmarshal([]byte(r.body), &p); err != nil || p.Code != "EUNAVAILABLE" {
			t.Errorf("POST: got body %q, want a problem with code EUNAVAILABLE", r.body)
		}
		// Records are immutable: the cache still serves them.
		if r := do(t, "GET", base+"/logs/r1", nil); r.status != http.StatusOK || r.body != `{"id":"r1","log":"a","seq":0}` {
			t.Errorf("cached GET /logs/r1: got %d %q, want 200 and the record", r.status, r.body)
		}
	})
}

// finalStage returns the instructions of the Dockerfile's last stage.
func finalStage(tb testing.TB) []string {
	tb.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		tb.Fatal(err)
	}
	var stage []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(strings.ToUpper(line), "FROM ") {
			stage = nil
		}
		stage = append(stage, line)
	}
	return stage
}

func TestDockerfile(t *testing.T) {
	stage := finalStage(t)
	var user string
	for _, line := range stage {
		if f := strings.Fields(line); strings.EqualFold(f[0], "USER") && len(f) > 1 {
			user = f[1]
		}
	}
	name, _, _ := strings.Cut(user, ":")
	if user == "" || name == "root" || name == "0" {
		t.Errorf("final stage USER: got %q, want a non-root user", user)
	}
	all, _ := os.ReadFile("Dockerfile")
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/trail", "EXPOSE 8080", "VOLUME"} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("Dockerfile: got no %q, want it", want)
		}
	}
}

// TestStaticBinary builds ./cmd/trail as the Dockerfile does and checks that
// the result needs no dynamic loader, so it runs on a distroless base.
func TestStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	if _, err := os.Stat("../cmd/trail"); err != nil {
		if inCI() {
			t.Fatalf("../cmd/trail: %v", err)
		}
		t.Skip("no ./cmd/trail yet")
	}
	out := filepath.Join(t.TempDir(), "trail")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", out, "./cmd/trail")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/trail: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("binary has an ELF interpreter, want a static executable")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("imported libraries: got %v, want none", libs)
	}
}

// rolesBlock returns the text between the role markers of a file.
func rolesBlock(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "// BEGIN trail roles")
	end := strings.Index(s, "// END trail roles")
	if start < 0 || end < start {
		tb.Fatalf("%s: no // BEGIN trail roles ... // END trail roles block", path)
	}
	return s[start:end]
}

type role struct {
	Role       string
	Privileges []struct {
		Resource struct{ DB, Collection string }
		Actions  []string
	}
	Roles []any
}

func TestMongoRoles(t *testing.T) {
	block := rolesBlock(t, "mongo-init.js")
	if doc := rolesBlock(t, "../docs/OPERATIONS.md"); doc != block {
		t.Errorf("the role definitions of docs/OPERATIONS.md and deploy/mongo-init.js differ:\n--- docs\n%s\n--- mongo-init.js\n%s", doc, block)
	}
	_, js, ok := strings.Cut(block, "const trailRoles = ")
	if !ok {
		t.Fatal("no const trailRoles = in the roles block")
	}
	js = strings.TrimSpace(js)
	js = strings.TrimSuffix(js, ";")
	var roles []role
	if err := json.Unmarshal([]byte(js), &roles); err != nil {
		t.Fatalf("the role definitions are not JSON: %v", err)
	}

	// What each role may do, by collection. The producer appends records
	// and checkpoints; it updates only the logs documents (lease and head)
	// and removes only its own id claims of a batch that never became
	// visible (package mongo). The auditor reads.
	appendOnly := []string{"createIndex", "find", "insert", "listIndexes"}
	want := map[string]map[string][]string{
		"trailProducer": {
			"records":     appendOnly,
			"checkpoints": appendOnly,
			"ids":         {"createIndex", "find", "insert", "listIndexes", "remove"},
			"logs":        {"createIndex", "find", "insert", "listIndexes", "update"},
		},
		"trailAuditor": {
			"records": {"find"}, "checkpoints": {"find"}, "ids": {"find"}, "logs": {"find"},
		},
	}
	if len(roles) != len(want) {
		t.Errorf("roles: got %d, want %d", len(roles), len(want))
	}
	for _, r := range roles {
		w, ok := want[r.Role]
		if !ok {
			t.Errorf("role %q: not expected", r.Role)
			continue
		}
		if len(r.Roles) != 0 {
			t.Errorf("role %s inherits %v, want nothing", r.Role, r.Roles)
		}
		got := map[string][]string{}
		for _, p := range r.Privileges {
			if p.Resource.DB != "trail" {
				t.Errorf("role %s: privilege on db %q, want trail", r.Role, p.Resource.DB)
			}
			actions := slices.Clone(p.Actions)
			slices.Sort(actions)
			got[p.Resource.Collection] = actions
		}
		for coll, actions := range w {
			if !slices.Equal(got[coll], actions) {
				t.Errorf("role %s on %s: got %v, want %v", r.Role, coll, got[coll], actions)
			}
		}
		for coll := range got {
			if _, ok := w[coll]; !ok {
				t.Errorf("role %s: privileges on %s, want none", r.Role, coll)
			}
		}
	}
}

// TestMongoInitSyntax checks that mongo-init.js parses as JavaScript.
// mongosh is not installable here; node parses the same language.
func TestMongoInitSyntax(t *testing.T) {
	node := lookPath("node")
	if node == "" {
		t.Skip("node is not installed")
	}
	if out, err := exec.Command(node, "--check", "mongo-init.js").CombinedOutput(); err != nil {
		t.Errorf("node --check mongo-init.js: %v\n%s", err, out)
	}
}

// TestNginxAccessLogOmitsQuery checks that the access log keeps no query
// string: the viewer is opened at /ui/?token=trailtok.…, a credential that
// reads a tenant for up to an hour, and list filters name actors.
func TestNginxAccessLogOmitsQuery(t *testing.T) {
	u := newUpstream(t, "a")
	ngx := MustStartNginx(t, u)
	const secret = "trailtok.payload.mac"
	if r := do(t, "GET", "http://"+ngx.Addr+"/ui/?token="+secret, nil); r.status != http.StatusOK {
		t.Fatalf("GET /ui/: got %d, want 200", r.status)
	}
	if r := do(t, "GET", "http://"+ngx.Addr+"/logs?actor=alice", nil); r.status != http.StatusOK {
		t.Fatalf("GET /logs: got %d, want 200", r.status)
	}
	ngx.Stop() // flushes and closes the log
	b, err := os.ReadFile(filepath.Join(ngx.Dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	if !strings.Contains(log, "GET /ui/ ") || !strings.Contains(log, "GET /logs ") {
		t.Errorf("access log: got %q, want lines for GET /ui/ and GET /logs", log)
	}
	for _, leak := range []string{secret, "alice"} {
		if strings.Contains(log, leak) {
			t.Errorf("access log: got %q, want no %q from the query string", log, leak)
		}
	}
}
