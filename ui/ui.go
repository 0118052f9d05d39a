// Package ui serves trail's viewer (docs/VIEWER.md) at /ui/: one HTML page
// from an html/template and plain JavaScript and CSS files, all embedded,
// so that it needs no build step and makes no request beyond its own
// server. The page talks to the HTTP API like any other client; this
// package authenticates nothing and reads no store.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/trail-audit/trail"
)

//go:embed index.html static
var files embed.FS

// Config is what New needs.
type Config struct {
	// FrameAncestors is the CSP frame-ancestors source list: which pages
	// may embed the viewer in a frame. "" means 'none'.
	FrameAncestors string

	// Problem answers the viewer's errors (a missing file, a method other
	// than GET or HEAD) as every other answer of the server is: httpapi's
	// problem+json writer, which internal/node passes in. nil answers in
	// plain text.
	Problem func(w http.ResponseWriter, r *http.Request, err error)
}

// New returns the handler of /ui/ and everything under it.
func New(cfg Config) http.Handler {
	static, _ := fs.Sub(files, "static") // embedded: cannot fail
	tmpl := template.Must(template.ParseFS(files, "index.html"))
	var page bytes.Buffer
	// The version query makes a new binary's assets bypass old caches.
	if err := tmpl.Execute(&page, struct{ Version string }{assetVersion(static)}); err != nil {
		panic("ui: index.html: " + err.Error())
	}
	fa := strings.TrimSpace(cfg.FrameAncestors)
	if fa == "" {
		fa = "'none'"
	}
	h := &handler{
		page:    page.Bytes(),
		files:   static,
		problem: cfg.Problem,
		static:  http.StripPrefix("/ui/static/", http.FileServerFS(static)),
		csp: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
			"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors " + fa,
	}
	return h
}

type handler struct {
	page    []byte
	files   fs.FS // static's files
	static  http.Handler
	csp     string
	problem func(w http.ResponseWriter, r *http.Request, err error)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		h.error(w, r, trail.Errorf(trail.EMETHOD, "method %s is not allowed on %s: the viewer is read-only; allowed: GET, HEAD", r.Method, r.URL.Path))
		return
	}
	switch {
	case r.URL.Path == "/ui/":
		// no-store: the page may be opened with ?token= once.
		hd.Set("Cache-Control", "no-store")
		hd.Set("Content-Type", "text/html; charset=utf-8")
		w.Write(h.page)
	case strings.HasPrefix(r.URL.Path, "/ui/static/") && h.isFile(strings.TrimPrefix(r.URL.Path, "/ui/static/")):
		hd.Set("Cache-Control", "no-cache")
		h.static.ServeHTTP(w, r)
	default:
		h.error(w, r, trail.Errorf(trail.ENOTFOUND, "the viewer has no %s; it is at /ui/", r.URL.Path))
	}
}

// isFile reports whether name is one of the static files. The file server
// would answer a missing one, or a directory listing, itself and not as a
// problem.
func (h *handler) isFile(name string) bool {
	st, err := fs.Stat(h.files, name)
	return err == nil && st.Mode().IsRegular()
}

// error answers err through Config.Problem, or in plain text without one.
func (h *handler) error(w http.ResponseWriter, r *http.Request, err error) {
	if h.problem != nil {
		h.problem(w, r, err)
		return
	}
	status := http.StatusNotFound
	if trail.ErrorCode(err) == trail.EMETHOD {
		status = http.StatusMethodNotAllowed
	}
	http.Error(w, trail.ErrorMessage(err), status)
}

// assetVersion is a short hash of every static file.
func assetVersion(static fs.FS) string {
	sum := sha256.New()
	fs.WalkDir(static, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(static, path)
			sum.Write([]byte(path))
			sum.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(sum.Sum(nil))[:12]
}
