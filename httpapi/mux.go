package httpapi

import (
	"net/http"
	"path"

	"github.com/trail-audit/trail"
)

// dispatch hands r to the mux, except for the requests the mux would answer
// itself in plain text or HTML: CONNECT, which it matches against no
// pattern, and paths that are not clean, which it redirects. Both become
// problems here, so that every answer a handler writes is problem+json.
func (s *server) dispatch(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		// The target is an authority (host:port), not a path of ours.
		u := *r.URL
		u.Path, u.RawPath = "/", ""
		r2 := *r
		r2.URL = &u
		w.Header().Set("Allow", "GET, HEAD, POST")
		s.error(w, &r2, trail.Errorf(trail.EMETHOD, "method CONNECT is not allowed: trail is not a proxy"))
		return
	}
	p := r.URL.EscapedPath()
	if clean := cleanPath(p); clean != p {
		// The mux would redirect to the clean path; a redirect is not an
		// answer an API client follows with its body, and the unclean form
		// (/logs/../x) is more often a probe than a mistake.
		s.error(w, r, trail.Errorf(trail.EINVALID, "path %s is not in clean form (no empty, . or .. segments); trail does not redirect: use %s", p, clean))
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// Every clean path matches "/", so this is only reached if the
		// routes change; never let the mux's own text through.
		s.handleNotFound(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// cleanPath is the form http.ServeMux redirects p to: rooted, with no
// empty, . or .. segments, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
