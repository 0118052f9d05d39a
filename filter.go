package trail

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// Filter selects records for List. Empty fields match everything.
type Filter struct {
	Tenant     string
	Actor      string // actor.id
	ActorType  string
	Action     string // exact, or a prefix if ActionPrefix
	Target     string // target.id
	TargetType string
	Source     string // source.service
	Outcome    string

	// ActionPrefix makes Action match every action that starts with it.
	// "account.*" in the API becomes Action "account." with ActionPrefix.
	ActionPrefix bool

	Since time.Time // time >= Since, if not zero; see SetSince
	Until time.Time // time < Until, if not zero; see SetUntil

	Desc  bool
	Limit int
	After *Cursor // resume strictly after this position

	// MaxBytes, if positive, ends a List after the entry that brings the
	// total size of the entries' Bytes to MaxBytes or more, so that a
	// reader can bound a page of records whose sizes it cannot know.
	MaxBytes int64
}

// Cursor is a position in (time, log, seq) order. Records are immutable and
// their keys unique, so paging by cursor never repeats or skips a record that
// existed when paging began.
type Cursor struct {
	Time int64  `json:"t"` // unix nanoseconds of the record's time
	Log  string `json:"l"`
	Seq  int64  `json:"s"`
}

// CursorOf returns the cursor just at e.
func CursorOf(e *Entry) *Cursor {
	return &Cursor{Time: e.Time.UnixNano(), Log: e.Log, Seq: e.Seq}
}

// Less reports whether c sorts before d.
func (c *Cursor) Less(d *Cursor) bool {
	if c.Time != d.Time {
		return c.Time < d.Time
	}
	if c.Log != d.Log {
		return c.Log < d.Log
	}
	return c.Seq < d.Seq
}

// String encodes c as an opaque token.
func (c *Cursor) String() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor decodes a token made by Cursor.String.
func ParseCursor(s string) (*Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c Cursor
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Log == "" || c.Seq < 0 {
		return nil, Errorf(EINVALID, "parameter \"cursor\" is not a cursor this server issued")
	}
	return &c, nil
}

// SetAction sets the action filter from the API form: exact, or "prefix.*".
func (f *Filter) SetAction(a string) error {
	if p, ok := strings.CutSuffix(a, "*"); ok {
		if p != "" && !strings.HasSuffix(p, ".") {
			return Errorf(EINVALID, "parameter \"action\": a prefix must end in \".*\", as in \"account.*\"")
		}
		f.Action, f.ActionPrefix = p, true
		return nil
	}
	f.Action, f.ActionPrefix = a, false
	return nil
}

// SetSince bounds the filter to records with time >= t. Every RFC 3339 time
// is taken exactly: record times lie in [1970-01-01, 2262-01-01) (see
// ParseEvent), so a bound outside that range excludes every record or none,
// and is replaced by an equivalent one that fits the int64 Unix nanoseconds
// the stores compare.
func (f *Filter) SetSince(t time.Time) {
	switch {
	case t.Before(minTime):
		f.Since = time.Time{} // every record is at or after t
	case !t.Before(maxTime):
		f.Since = maxTime // no record is this late
	default:
		f.Since = t.UTC()
	}
}

// SetUntil bounds the filter to records with time < t, exactly for every
// RFC 3339 time, as SetSince does.
func (f *Filter) SetUntil(t time.Time) {
	switch {
	case !t.Before(maxTime):
		f.Until = time.Time{} // every record is before t
	case !t.After(minTime):
		f.Until = minTime // no record is before 1970: time < 0 matches none
	default:
		f.Until = t.UTC()
	}
}

// Matches reports whether r passes f's field and time filters. It ignores
// the paging fields (After, Desc, Limit): a live tail (package tail)
// matches records in memory as they are committed, and must select exactly
// what List would.
func (f *Filter) Matches(r *Record) bool {
	tg := r.TargetOrZero()
	switch {
	case f.Tenant != "" && r.Tenant != f.Tenant,
		f.Actor != "" && r.Actor.ID != f.Actor,
		f.ActorType != "" && r.Actor.Type != f.ActorType,
		!f.ActionPrefix && f.Action != "" && r.Action != f.Action,
		f.ActionPrefix && !strings.HasPrefix(r.Action, f.Action),
		f.Target != "" && tg.ID != f.Target,
		f.TargetType != "" && tg.Type != f.TargetType,
		f.Source != "" && r.Source.Service != f.Source,
		f.Outcome != "" && r.Outcome != f.Outcome,
		!f.Since.IsZero() && r.Time.Before(f.Since),
		!f.Until.IsZero() && !r.Time.Before(f.Until):
		return false
	}
	return true
}
