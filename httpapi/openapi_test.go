package httpapi_test

import (
	"bytes"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/trail-audit/trail/httpapi"
	"github.com/trail-audit/trail/internal/testopenapi"
)

var (
	openAPIOnce sync.Once
	openAPI     *testopenapi.Validator
)

// openAPIValidator returns the validator of the server's embedded document,
// loaded once per test binary.
func openAPIValidator(tb testing.TB) *testopenapi.Validator {
	tb.Helper()
	openAPIOnce.Do(func() { openAPI = testopenapi.MustLoad(tb, httpapi.OpenAPI()) })
	if openAPI == nil {
		tb.Fatal("the OpenAPI document did not load (see the first test that loaded it)")
	}
	return openAPI
}

// TestOpenAPICoversRoutes fails for any route of the router's own table
// that the document does not describe, or describes with another scope.
func TestOpenAPICoversRoutes(t *testing.T) {
	ts := MustOpenServer(t, serverConfig{})
	doc := openAPIValidator(t).Doc()
	routes := httpapi.Routes(ts.Config.Handler)
	if len(routes) < 15 {
		t.Fatalf("Routes: got %d routes, want the full table", len(routes))
	}
	for _, rt := range routes {
		name := rt.Method + " " + rt.Path
		item := doc.Paths.Value(rt.Path)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("%s: got no operation in httpapi/openapi.json, want one", name)
			continue
		}
		op := item.GetOperation(rt.Method)
		if got := op.Extensions["x-trail-scope"]; got != string(rt.Scope) {
			t.Errorf("%s: x-trail-scope: got %v, want %q", name, got, rt.Scope)
		}
		var scopes []string
		if op.Security != nil {
			for _, req := range *op.Security {
				scopes = append(scopes, req["bearer"]...)
			}
		}
		switch {
		case rt.Scope == httpapi.Public && len(scopes) != 0:
			t.Errorf("%s: security: got %v, want none (public)", name, scopes)
		case rt.Scope != httpapi.Public && !slices.Equal(scopes, []string{string(rt.Scope)}):
			t.Errorf("%s: security: got bearer %v, want [%s]", name, scopes, rt.Scope)
		}
		for _, status := range []int{http.StatusBadRequest, http.StatusInternalServerError} {
			if op.Responses.Status(status) == nil {
				t.Errorf("%s: got no %d answer documented, want one (every route has it)", name, status)
			}
		}
	}
	// And the other way: the document describes no route the server lacks,
	// but for those of branches not merged yet.
	pending := []string{"GET /whoami", "POST /session", "DELETE /session"} // the viewer's session (branch viewer)
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			name := method + " " + path
			if !slices.ContainsFunc(routes, func(rt httpapi.Route) bool { return rt.Method+" "+rt.Path == name }) && !slices.Contains(pending, name) {
				t.Errorf("%s: documented in httpapi/openapi.json, but the server has no such route", name)
			}
		}
	}
}

// TestOpenAPIServed checks that GET /openapi.json serves the embedded
// document, publicly.
func TestOpenAPIServed(t *testing.T) {
	ts := MustOpenAuthServer(t, "sqlite")
	resp := ts.do(t, "GET", "/openapi.json", "")
	resp.wantStatus(t, http.StatusOK)
	if ct := resp.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	if !bytes.Equal(resp.body, httpapi.OpenAPI()) {
		t.Errorf("body: got %d bytes that differ from the embedded document's %d", len(resp.body), len(httpapi.OpenAPI()))
	}
	ts.do(t, "GET", "/openapi.json?x=1", "").problem(t, http.StatusBadRequest)
}
