package trail

import "strings"

// SetTraceIDs gives every event the trace id of a request's W3C
// traceparent (an HTTP header or gRPC metadata), unless it has one of its
// own (a CloudEvent's traceparent extension). The record's request_id takes
// it when the event has none. An absent or malformed traceparent changes
// nothing. Every adapter that takes events calls it, so that one trace
// correlates them however they arrive.
func SetTraceIDs(traceparent string, events []*Event) {
	id, ok := TraceID(traceparent)
	if !ok {
		return
	}
	for _, e := range events {
		if e.TraceID == "" {
			e.TraceID = id
		}
	}
}

// TraceID returns the trace id of a W3C Trace Context traceparent header
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"), and false if
// the header is not one: a version of ff, an all-zero trace or parent id,
// or a version-00 header of another length.
func TraceID(traceparent string) (string, bool) {
	tp := strings.TrimSpace(traceparent)
	if len(tp) < 55 || (tp[:2] == "00" && len(tp) != 55) || (len(tp) > 55 && tp[55] != '-') {
		return "", false
	}
	if tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || !lowerHex(tp[:2]) || tp[:2] == "ff" ||
		!lowerHex(tp[3:35]) || !lowerHex(tp[36:52]) || !lowerHex(tp[53:55]) {
		return "", false
	}
	if strings.Trim(tp[3:35], "0") == "" || strings.Trim(tp[36:52], "0") == "" {
		return "", false
	}
	return tp[3:35], true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
