package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/trail-audit/trail"
)

// A KeyManager creates, lists and revokes API keys and mints viewer tokens;
// *auth.Manager implements it. Creations and revocations are appended to
// the log as events.
type KeyManager interface {
	// CreateKey completes spec (id, secret hash, creation time), stores it
	// and returns it with the key to hand to its holder, once.
	CreateKey(ctx context.Context, spec *trail.Key, by *trail.Principal) (*trail.Key, string, error)
	ListKeys(ctx context.Context) ([]*trail.Key, error)
	RevokeKey(ctx context.Context, id string, by *trail.Principal) (*trail.Key, error)
	// MintToken returns a viewer token for tenant that lives ttl (0: the
	// default) and when it expires.
	MintToken(ctx context.Context, tenant string, ttl time.Duration) (string, time.Time, error)
}

// keyView is a key as the API shows it: never the secret or its hash.
type keyView struct {
	*trail.Key
	State string `json:"state"`
}

func viewKey(k *trail.Key) keyView { return keyView{Key: k, State: k.State(time.Now())} }

// keyRequest is the body of POST /keys.
type keyRequest struct {
	Name    string        `json:"name"`
	Scopes  []trail.Scope `json:"scopes"`
	Tenant  string        `json:"tenant"`
	Source  string        `json:"source"`
	Expires *time.Time    `json:"expires"`
	Rate    float64       `json:"rate"`
}

// decodeStrict decodes a small JSON body, refusing unknown fields and any
// Content-Type but application/json: a page of another site can send a
// text/plain POST without a CORS preflight, and on a server that is open
// (--auth off, or auto before its first key) nothing else would stop it.
func (s *server) decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	if kind, err := requestBodyKind(r.Header); err != nil {
		return err
	} else if kind != bodyJSON {
		return trail.Errorf(trail.EUNSUPPORTED, "Content-Type %q is not supported here; send application/json", r.Header.Get("Content-Type"))
	}
	h := hold{b: &s.bodies}
	defer h.release() // decoded before it returns
	body, err := s.readBody(w, r, &h)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return trail.Errorf(trail.EINVALID, "request body: %v", err)
	}
	return nil
}

func (s *server) keyManager() (KeyManager, error) {
	if s.keys == nil {
		return nil, trail.Errorf(trail.ENOTFOUND, "key management is not enabled on this server")
	}
	return s.keys, nil
}

// handleKeysCreate creates a key and answers with it and its secret, which
// is never shown again.
func (s *server) handleKeysCreate(w http.ResponseWriter, r *http.Request) {
	km, err := s.keyManager()
	var req keyRequest
	if err == nil {
		err = s.decodeStrict(w, r, &req)
	}
	if err != nil {
		s.error(w, r, err)
		return
	}
	spec := &trail.Key{Name: req.Name, Scopes: req.Scopes, Tenant: req.Tenant, Source: req.Source, Rate: req.Rate}
	if req.Expires != nil {
		spec.Expires = req.Expires.UTC()
	}
	k, secret, err := km.CreateKey(r.Context(), spec, trail.PrincipalFromContext(r.Context()))
	if err != nil {
		s.error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "/keys/"+k.ID)
	writeJSON(w, http.StatusCreated, struct {
		keyView
		Secret string `json:"key"`
	}{viewKey(k), secret})
}

// handleKeysIndex lists every key.
func (s *server) handleKeysIndex(w http.ResponseWriter, r *http.Request) {
	km, err := s.keyManager()
	var keys []*trail.Key
	if err == nil {
		keys, err = km.ListKeys(r.Context())
	}
	if err != nil {
		s.error(w, r, err)
		return
	}
	views := make([]keyView, len(keys))
	for i, k := range keys {
		views[i] = viewKey(k)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		Keys []keyView `json:"keys"`
	}{views})
}

// handleKeysRevoke revokes a key; revoking a revoked key changes nothing.
func (s *server) handleKeysRevoke(w http.ResponseWriter, r *http.Request) {
	km, err := s.keyManager()
	var k *trail.Key
	if err == nil {
		k, err = km.RevokeKey(r.Context(), r.PathValue("id"), trail.PrincipalFromContext(r.Context()))
	}
	if err != nil {
		s.error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, viewKey(k))
}

// tokenRequest is the body of POST /tokens.
type tokenRequest struct {
	Tenant string `json:"tenant"`
	TTL    string `json:"ttl"` // a Go duration such as "15m"; "" for the default
}

// handleTokensCreate mints a read-only viewer token bound to one tenant.
func (s *server) handleTokensCreate(w http.ResponseWriter, r *http.Request) {
	km, err := s.keyManager()
	var req tokenRequest
	if err == nil {
		err = s.decodeStrict(w, r, &req)
	}
	var ttl time.Duration
	if err == nil && req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			err = trail.Errorf(trail.EINVALID, "field \"ttl\" must be a duration such as \"15m\", not %q", req.TTL)
		}
	}
	var tok string
	var exp time.Time
	if err == nil {
		tok, exp, err = km.MintToken(r.Context(), req.Tenant, ttl)
	}
	if err != nil {
		s.error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "tenant": req.Tenant, "expires": exp})
}
