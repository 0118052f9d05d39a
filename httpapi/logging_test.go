package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// TestLogLinesCarryRequestID: every line the API logs for a request
// carries its request id, and its trace id when it sent a traceparent.
func TestLogLinesCarryRequestID(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := MustOpenServer(t, serverConfig{Logger: logger})
	ts.do(t, "POST", "/logs", `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`,
		"Content-Type", "application/json", "X-Request-Id", "req-1", "Traceparent", traceparent)
	ts.do(t, "GET", "/nope", "", "X-Request-Id", "req-2")
	ts.Server.Close() // the request lines are written once the handlers return
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	sc := bufio.NewScanner(&logs)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %s: %v", sc.Bytes(), err)
		}
		if msg, _ := line["msg"].(string); !strings.HasPrefix(msg, "http") {
			continue // the ingester's lines are about commits, not requests
		}
		id, _ := line["request_id"].(string)
		if id == "" {
			t.Errorf("log line %s: no request_id", sc.Bytes())
		}
		seen[id] = true
		if tid, _ := line["trace_id"].(string); id == "req-1" && tid != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("log line %s: trace_id: got %q, want the traceparent's", sc.Bytes(), tid)
		}
	}
	if !seen["req-1"] || !seen["req-2"] {
		t.Errorf("request ids logged: got %v, want req-1 and req-2", seen)
	}
}
