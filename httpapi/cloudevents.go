package httpapi

import (
	"bytes"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/trail-audit/trail"
)

// ceHeaderPrefix marks a CloudEvents attribute in the HTTP binary mode.
const ceHeaderPrefix = "Ce-"

// parseCloudEvents reads a POST /logs body of CloudEvents: structured
// (one event), batched (an array, atomic like any batch) or binary (the
// ce-* headers and the body as data). single reports one event, which
// gets a single receipt and Location as a JSON object does.
func parseCloudEvents(h http.Header, body []byte, lim trail.Limits) (events []*trail.Event, single bool, err error) {
	if h.Get("Ce-Specversion") != "" {
		attrs, err := ceAttributes(h)
		if err != nil {
			return nil, false, err
		}
		e, err := trail.ParseCloudEventBinary(attrs, h.Get("Content-Type"), body, lim)
		return []*trail.Event{e}, true, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, false, trail.Errorf(trail.EINVALID, "request body is empty; send a CloudEvent or an array of them")
	}
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt == trail.CloudEventsBatchJSON {
		events, err = trail.ParseCloudEventBatch(body, lim)
		return events, false, err
	}
	e, err := trail.ParseCloudEvent(body, lim)
	return []*trail.Event{e}, true, err
}

// ceAttributes returns the binary mode's ce-* headers by attribute name
// (lowercase, without the prefix), percent-decoded as the HTTP binding
// asks. A header given twice is refused, as a JSON key given twice is.
func ceAttributes(h http.Header) (map[string]string, error) {
	attrs := map[string]string{}
	for k, vs := range h {
		name, ok := strings.CutPrefix(k, ceHeaderPrefix)
		if !ok || name == "" {
			continue
		}
		name = strings.ToLower(name)
		if len(vs) != 1 {
			return nil, trail.Errorf(trail.EINVALID, "header %q is given %d times; send each attribute once", "ce-"+name, len(vs))
		}
		v, err := url.PathUnescape(vs[0])
		if err != nil {
			return nil, trail.Errorf(trail.EINVALID, "header %q is not percent-encoded correctly", "ce-"+name)
		}
		attrs[name] = v
	}
	return attrs, nil
}
