package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/trail-audit/trail"
)

// KeyInfo is an API key as the server shows it: never its secret.
type KeyInfo struct {
	trail.Key
	State string `json:"state"` // active, expired or revoked
}

// postJSON sends v as JSON and decodes a 200 or 201 answer into out. It is
// not retried: creating a key twice would make two keys.
func (c *Client) postJSON(ctx context.Context, path string, v, out any) error {
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			return fmt.Errorf("trail client: POST %s: %w", path, err)
		}
	}
	resp, err := c.do(ctx, &request{method: http.MethodPost, path: path, body: body, contentType: "application/json", accept: "application/json"})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return errorFrom(resp)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("trail client: POST %s: decode answer: %w", path, err)
	}
	return nil
}

// CreateKey asks the server (with an admin key) to create a key with the
// name, scopes, bindings, rate and expiry of spec. It returns the key as
// stored and the key to hand to its holder, which the server never shows
// again.
func (c *Client) CreateKey(ctx context.Context, spec *trail.Key) (*KeyInfo, string, error) {
	req := map[string]any{"name": spec.Name, "scopes": spec.Scopes, "tenant": spec.Tenant, "source": spec.Source, "rate": spec.Rate}
	if !spec.Expires.IsZero() {
		req["expires"] = spec.Expires
	}
	var out struct {
		KeyInfo
		Secret string `json:"key"`
	}
	if err := c.postJSON(ctx, "/keys", req, &out); err != nil {
		return nil, "", err
	}
	return &out.KeyInfo, out.Secret, nil
}

// ListKeys returns every key, revoked and expired ones too.
func (c *Client) ListKeys(ctx context.Context) ([]KeyInfo, error) {
	var out struct {
		Keys []KeyInfo `json:"keys"`
	}
	if err := c.getJSON(ctx, "/keys", nil, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// RevokeKey revokes the key with the id.
func (c *Client) RevokeKey(ctx context.Context, id string) (*KeyInfo, error) {
	var out KeyInfo
	if err := c.postJSON(ctx, "/keys/"+url.PathEscape(id)+"/revoke", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// MintToken asks for a read-only viewer token bound to tenant that lives
// ttl (0: the server's default of 15 minutes; at most 1 hour).
func (c *Client) MintToken(ctx context.Context, tenant string, ttl time.Duration) (string, time.Time, error) {
	req := map[string]string{"tenant": tenant}
	if ttl != 0 {
		req["ttl"] = ttl.String()
	}
	var out struct {
		Token   string    `json:"token"`
		Expires time.Time `json:"expires"`
	}
	if err := c.postJSON(ctx, "/tokens", req, &out); err != nil {
		return "", time.Time{}, err
	}
	return out.Token, out.Expires, nil
}
