package httpapi

import (
	_ "embed"
	"net/http"
	"strconv"
)

// openapi is the OpenAPI 3.1 document of this API. It is written by hand;
// the tests check it against the route table and validate their real
// requests and answers against it, so that it cannot drift from the code.
//
//go:embed openapi.json
var openapi []byte

// OpenAPI returns the OpenAPI 3.1 document the server serves at
// GET /openapi.json. The caller must not modify it.
func OpenAPI() []byte { return openapi }

// handleOpenAPI serves the OpenAPI document. It is public: it describes
// routes and schemas, which docs/API.md publishes anyway.
func (s *server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r.URL.Query()); err != nil {
		s.error(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(openapi)))
	w.WriteHeader(http.StatusOK)
	w.Write(openapi)
}
