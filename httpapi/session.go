package httpapi

import (
	"net/http"
	"strings"

	"github.com/trail-audit/trail"
)

// The viewer's cookie credential (docs/VIEWER.md). SessionCookie holds the
// credential itself, HttpOnly, Secure and SameSite=Strict, so that the
// page's own script never reads it and it is never in a URL; it is stateless,
// so every replica accepts it. A request that authenticates with the cookie
// and is not a GET or HEAD must also carry CSRFHeader: a cross-site page
// cannot set a custom header without a CORS preflight, which trail never
// grants.
const (
	SessionCookie = "trail_session"
	CSRFHeader    = "X-Trail-CSRF"
)

// credential returns the Authorization header of r, or one built from the
// session cookie when r has none. It returns an EFORBIDDEN error for a
// state-changing request that leans on the cookie without CSRFHeader.
func credential(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		return h, nil
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return "", nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(CSRFHeader) == "" {
		return "", trail.Errorf(trail.EFORBIDDEN, "a request authenticated by the viewer's cookie must carry the %s header unless it is a GET", CSRFHeader)
	}
	return "Bearer " + c.Value, nil
}

// handleSessionCreate turns the credential of the Authorization header into
// the viewer's session cookie, once the guard has accepted it. With
// authentication off there is nothing to keep, and it sets no cookie.
func (s *server) handleSessionCreate(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if s.auth != nil && ok && strings.EqualFold(scheme, "Bearer") && cred != "" {
		http.SetCookie(w, sessionCookie(cred, 0))
	}
	s.writeWhoami(w, r)
}

// handleSessionDelete clears the session cookie. It is public, so that a
// viewer whose credential expired or was revoked can still sign out: it
// changes only the caller's own cookie. A request that carries the cookie
// still needs CSRFHeader, so that another site cannot sign the viewer out.
func (s *server) handleSessionDelete(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if _, err := credential(r); err != nil {
		s.error(w, r, err)
		return
	}
	http.SetCookie(w, sessionCookie("", -1))
	w.WriteHeader(http.StatusNoContent)
}

// sessionCookie returns the cookie that holds cred, or with maxAge -1 the
// one that deletes it. It lasts as long as the browser session; a viewer
// token inside it expires on its own.
func sessionCookie(cred string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: SessionCookie, Value: cred, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	}
}

// whoami is the answer of GET /whoami: who the caller is to this server.
type whoami struct {
	Open   bool          `json:"open"`             // authentication is off
	KeyID  string        `json:"key_id,omitempty"` // "" for a viewer token or when open
	Viewer bool          `json:"viewer"`           // a viewer token rather than a key
	Tenant string        `json:"tenant,omitempty"` // the one tenant it sees; "" for all
	Scopes []trail.Scope `json:"scopes"`
}

// handleWhoami tells the viewer which key and tenant it is using.
func (s *server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.writeWhoami(w, r)
}

func (s *server) writeWhoami(w http.ResponseWriter, r *http.Request) {
	p := trail.PrincipalFromContext(r.Context())
	out := whoami{Open: p.Open, KeyID: p.KeyID, Viewer: p.Viewer, Tenant: p.Tenant, Scopes: p.Scopes}
	if p.Open {
		out.Scopes = trail.AllScopes
	}
	if out.Scopes == nil {
		out.Scopes = []trail.Scope{}
	}
	writeJSON(w, http.StatusOK, out)
}
