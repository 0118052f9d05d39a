package testopenapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/trail-audit/trail/internal/testopenapi"
)

const doc = `{
  "openapi": "3.1.0",
  "info": {"title": "t", "version": "1"},
  "paths": {
    "/things/{id}": {
      "get": {
        "parameters": [
          {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
          {"name": "n", "in": "query", "schema": {"type": "integer"}}
        ],
        "responses": {
          "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}}}},
          "400": {"description": "bad", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        }
      }
    }
  },
  "components": {"schemas": {"Problem": {"type": "object", "required": ["status"], "properties": {"status": {"type": "integer"}}}}}
}`

// recordingTB collects the errors the middleware reports.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestWrap runs exchanges that keep and that break the document, and
// checks that exactly the broken ones are reported.
func TestWrap(t *testing.T) {
	v := testopenapi.MustLoad(t, []byte(doc))
	for _, c := range []struct {
		name, path string
		status     int
		ct, body   string
		wantErr    string // "" for none
	}{
		{"documented", "/things/a", 200, "application/json", `{"id":"a"}`, ""},
		{"body breaks its schema", "/things/a", 200, "application/json", `{"name":"a"}`, `"id"`},
		{"undocumented status", "/things/a", 409, "application/problem+json", `{"status":409}`, "status is not supported"},
		{"refused request succeeds", "/things/a?n=many", 200, "application/json", `{"id":"a"}`, "refuses a request the server accepted"},
		{"refused request fails", "/things/a?n=many", 400, "application/problem+json", `{"status":400}`, ""},
		{"unrouted problem", "/nothing", 404, "application/problem+json", `{"status":404}`, ""},
		{"unrouted success", "/nothing", 200, "application/json", `{}`, "not 400, 404 or 405"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rtb := &recordingTB{TB: t}
			h := v.Wrap(rtb)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", c.ct)
				w.WriteHeader(c.status)
				w.Write([]byte(c.body))
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
			if rec.Body.String() != c.body {
				t.Errorf("body passed through: got %q, want %q", rec.Body.String(), c.body)
			}
			got := strings.Join(rtb.errs, "\n")
			switch {
			case c.wantErr == "" && got != "":
				t.Errorf("got errors %s, want none", got)
			case c.wantErr != "" && !strings.Contains(got, c.wantErr):
				t.Errorf("got errors %q, want one containing %q", got, c.wantErr)
			}
		})
	}
}
