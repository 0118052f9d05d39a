package ui_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/trail-audit/trail/internal/testserver"
	"github.com/trail-audit/trail/ui"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHeaders(t *testing.T) {
	srv := testserver.MustOpen(t, testserver.Config{UI: &ui.Config{FrameAncestors: "https://app.example.com"}})
	resp, body := get(t, srv.URL+"/ui/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/: got %d, want 200", resp.StatusCode)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "connect-src 'self'", "frame-ancestors https://app.example.com"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy: got %q, want it to hold %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy: got %q, want no unsafe-inline or unsafe-eval", csp)
	}
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: got %q, want %q", h, got, want)
		}
	}
	// Every script is a file of our own: no inline script, no other host.
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(body, -1) {
		if !regexp.MustCompile(`^<script src="/ui/static/\w+\.js\?v=[0-9a-f]{12}" defer>$`).MatchString(tag) {
			t.Errorf("index.html: got %s, want only local script files", tag)
		}
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("index.html names another host; want none")
	}
	for path, ctype := range map[string]string{"/ui/static/app.js": "text/javascript", "/ui/static/verify.js": "text/javascript", "/ui/static/app.css": "text/css"} {
		resp, _ := get(t, srv.URL+path)
		if got := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(got, ctype) {
			t.Errorf("GET %s: got %d %q, want 200 %s", path, resp.StatusCode, got, ctype)
		}
	}
	if resp, _ := get(t, srv.URL+"/ui/nothing"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /ui/nothing: got %d, want 404", resp.StatusCode)
	}
}

// TestOff checks that a server without the viewer (--ui=false) has no /ui/.
func TestOff(t *testing.T) {
	srv := testserver.MustOpen(t, testserver.Config{})
	if resp, _ := get(t, srv.URL+"/ui/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /ui/ with the viewer off: got %d, want 404", resp.StatusCode)
	}
}

// TestProblems checks that the viewer's errors are problem+json, as every
// other answer of the server is, with the project's codes.
func TestProblems(t *testing.T) {
	srv := testserver.MustOpen(t, testserver.Config{UI: &ui.Config{}})
	for _, tt := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/ui/nothing", http.StatusNotFound, "not_found"},
		{"GET", "/ui/static/nothing.js", http.StatusNotFound, "not_found"},
		{"GET", "/ui/static/", http.StatusNotFound, "not_found"}, // no directory listing
		{"POST", "/ui/", http.StatusMethodNotAllowed, "method_not_allowed"},
	} {
		req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), `"code":"`+tt.code+`"`) {
			t.Errorf("%s %s: got %d %s %s, want %d problem+json with code %s", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), b, tt.status, tt.code)
		}
		if tt.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow got %q, want GET, HEAD", tt.method, tt.path, resp.Header.Get("Allow"))
		}
	}
}
