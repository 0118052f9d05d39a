package httpapi

import (
	"net/url"
	"testing"
	"time"

	"github.com/trail-audit/trail"
)

// FuzzParseListQuery checks that any query string either fails with a 400
// (EINVALID) or gives a filter the stores can run exactly: a page size in
// range, and time bounds that survive the int64 Unix nanoseconds the
// stores compare.
func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{
		"", "limit=10&order=asc", "action=account.*&since=2024-01-01T00:00:00Z&until=2025-01-01T00:00:00Z",
		"since=2263-01-01T00:00:00Z", "until=1600-01-01T00:00:00Z", "since=0001-01-01T00:00:00Z",
		"cursor=%%%", "a=%zz", "cursor=" + (&trail.Cursor{Time: 5, Log: "main", Seq: 3}).String(),
		"limit=0", "limit=1001", "outcome=meh", "tenant=a&tenant=b", "a=1;b=2",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, stream bool) {
		if checkRawQuery(raw) != nil {
			return // ServeHTTP answers 400 before any handler
		}
		q, _ := url.ParseQuery(raw)
		fl, limit, err := parseListQuery(q, stream)
		if err != nil {
			if trail.ErrorCode(err) != trail.EINVALID {
				t.Fatalf("%q: got code %s, want %s", raw, trail.ErrorCode(err), trail.EINVALID)
			}
			return
		}
		if !stream && (limit < 1 || limit > maxListLimit) || stream && limit < 0 {
			t.Fatalf("%q: got limit %d", raw, limit)
		}
		for _, b := range []time.Time{fl.Since, fl.Until} {
			if !b.IsZero() && !time.Unix(0, b.UnixNano()).Equal(b) {
				t.Fatalf("%q: bound %s does not fit int64 nanoseconds", raw, b)
			}
		}
	})
}
