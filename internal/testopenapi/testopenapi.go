// Package testopenapi checks a server's real traffic against its OpenAPI
// document in tests: Wrap puts a middleware in front of the handler that
// validates every request and every answer with kin-openapi's
// openapi3filter (OpenAPI 3.1, JSON Schema 2020-12) and fails the test on
// a mismatch.
//
// The rules, which docs/API.md repeats under "OpenAPI":
//   - An answer must be documented for its route: its status, its media
//     type, its body's schema and its documented headers.
//   - A request the document refuses must not succeed: if the document
//     calls a request invalid, the server must answer it with an error.
//     Tests send bad requests on purpose; the document may be stricter
//     than nothing, but never stricter than the server.
//   - A request that matches no documented route or method must be
//     answered with a problem (404, 405 or 400).
//   - HEAD is checked as GET without a body; a CloudEvents binary-mode
//     request (ce-specversion) has its body, the event's data, unchecked.
package testopenapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

func init() {
	for _, ct := range []string{"application/x-ndjson", "application/ndjson", "application/jsonl"} {
		openapi3filter.RegisterBodyDecoder(ct, ndjsonDecoder)
	}
	for _, ct := range []string{"text/event-stream", "application/openmetrics-text"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
	for _, ct := range []string{"application/cloudevents+json", "application/cloudevents-batch+json"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.JSONBodyDecoder)
	}
}

// ndjsonDecoder decodes NDJSON as the array of its lines, which is how the
// document describes an NDJSON body. Blank lines are skipped, as the
// server skips them.
func ndjsonDecoder(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 64<<20)
	lines := []any{}
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("NDJSON line %d: %w", len(lines)+1, err)
		}
		lines = append(lines, v)
	}
	return lines, sc.Err()
}

// A Validator checks requests and answers against one document.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
}

// MustLoad parses and validates an OpenAPI 3.1 document, and fails tb if
// it is not one.
func MustLoad(tb testing.TB, data []byte) *Validator {
	tb.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		tb.Fatalf("OpenAPI document: load: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		tb.Fatalf("OpenAPI document: got version %q, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		tb.Fatalf("OpenAPI document: %v", err)
	}
	// The servers name the default address; tests listen elsewhere.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		tb.Fatalf("OpenAPI document: router: %v", err)
	}
	return &Validator{doc: doc, router: router}
}

// Doc returns the parsed document.
func (v *Validator) Doc() *openapi3.T { return v.doc }

// Wrap returns a middleware that checks every request and answer through
// h and fails tb on each mismatch (tb.Errorf, so that it may run on the
// server's goroutines).
func (v *Validator) Wrap(tb testing.TB) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler { return &middleware{next: h, v: v, tb: tb} }
}

type middleware struct {
	next http.Handler
	v    *Validator
	tb   testing.TB
}

// Unwrap returns the handler the middleware checks, so that
// httpapi.Routes still finds the route table behind it.
func (m *middleware) Unwrap() http.Handler { return m.next }

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			m.tb.Errorf("OpenAPI validator: read the request body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	rec := &recorder{ResponseWriter: w}
	m.next.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if err := m.v.check(r, body, rec); err != nil {
		m.tb.Errorf("OpenAPI: %s %s: answered %d: %v", r.Method, r.URL.RequestURI(), rec.status, err)
	}
}

// check validates one exchange by the package's rules.
func (v *Validator) check(r *http.Request, body []byte, rec *recorder) error {
	req := r.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(body))
	head := req.Method == http.MethodHead
	if head {
		req.Method = http.MethodGet
	}
	// The router matches the escaped path, as the server's mux does.
	req.URL = &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return v.checkUnrouted(rec)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
		SkipSettingDefaults: true,
		MultiError:          true,
		ExcludeRequestBody:  r.Header.Get("Ce-Specversion") != "",
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && rec.status < 300 {
		return fmt.Errorf("the document refuses a request the server accepted: %w", err)
	}
	ropts := *opts
	ropts.IncludeResponseStatus = true
	ropts.ExcludeResponseBody = head || rec.status == http.StatusNotModified || rec.Header().Get("Content-Encoding") != ""
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.status, Header: rec.Header(), Options: &ropts}
	out.SetBodyBytes(rec.body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("the answer breaks the document: %w", err)
	}
	return nil
}

// checkUnrouted checks the answer to a request outside the document: it
// must be a problem that says so.
func (v *Validator) checkUnrouted(rec *recorder) error {
	if !slices.Contains([]int{http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed}, rec.status) {
		return fmt.Errorf("no documented route or method, yet the answer is %d, not 400, 404 or 405", rec.status)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("no documented route: got Content-Type %q, want application/problem+json", ct)
	}
	var p any
	if err := json.Unmarshal(rec.body.Bytes(), &p); err != nil {
		return fmt.Errorf("no documented route: problem body: %w", err)
	}
	schema := v.doc.Components.Schemas["Problem"].Value
	if err := schema.VisitJSON(p, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("no documented route: the problem breaks schema Problem: %w", err)
	}
	return nil
}

// recorder passes an answer through and keeps a copy of its status and
// body. Flush and Unwrap keep streaming answers streaming.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
