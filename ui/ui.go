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
)

//go:embed index.html static
var files embed.FS

// Config is what New needs.
type Config struct {
	// FrameAncestors is the CSP frame-ancestors source list: which pages
	// may embed the viewer in a frame. "" means 'none'.
	FrameAncestors string
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
		page:   page.Bytes(),
		static: http.StripPrefix("/ui/static/", http.FileServerFS(static)),
		csp: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
			"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors " + fa,
	}
	return h
}

type handler struct {
	page   []byte
	static http.Handler
	csp    string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "the viewer is read-only", http.StatusMethodNotAllowed)
		return
	}
	switch {
	case r.URL.Path == "/ui/":
		// no-store: the page may be opened with ?token= once.
		hd.Set("Cache-Control", "no-store")
		hd.Set("Content-Type", "text/html; charset=utf-8")
		w.Write(h.page)
	case strings.HasPrefix(r.URL.Path, "/ui/static/"):
		hd.Set("Cache-Control", "no-cache")
		h.static.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
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
