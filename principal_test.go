package trail_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
)

func TestParseScopes(t *testing.T) {
	for _, tt := range []struct {
		in, want, err string
	}{
		{"write", "write", ""},
		{"read, write", "write,read", ""},
		{"admin,audit,read,write", "write,read,audit,admin", ""},
		{"", "", "unknown scope"},
		{"write,owner", "", `unknown scope "owner"`},
		{"read,read", "", "given twice"},
	} {
		got, err := trail.ParseScopes(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseScopes(%q): got %v, want error containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || trail.FormatScopes(got) != tt.want {
			t.Errorf("ParseScopes(%q): got %q, %v; want %q", tt.in, trail.FormatScopes(got), err, tt.want)
		}
	}
}

func TestKeyValidateAndState(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	valid := func() *trail.Key {
		return &trail.Key{ID: "k1", Name: "billing", Scopes: []trail.Scope{trail.ScopeWrite}, Created: now}
	}
	for _, tt := range []struct {
		name string
		edit func(k *trail.Key)
		want string
	}{
		{"valid", func(k *trail.Key) {}, ""},
		{"bad id", func(k *trail.Key) { k.ID = "K_1" }, "key id may hold only"},
		{"no name", func(k *trail.Key) { k.Name = "" }, "key name"},
		{"no scopes", func(k *trail.Key) { k.Scopes = nil }, "at least one scope"},
		{"tenant audit", func(k *trail.Key) { k.Tenant, k.Scopes = "a", []trail.Scope{trail.ScopeAudit} }, "cannot hold them"},
		{"negative rate", func(k *trail.Key) { k.Rate = -1 }, "key rate"},
		{"expires before created", func(k *trail.Key) { k.Expires = now.Add(-time.Hour) }, "before it is created"},
	} {
		k := valid()
		tt.edit(k)
		err := k.Validate()
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}

	k := valid()
	if got := k.State(now); got != trail.KeyActive {
		t.Errorf("State: got %s, want active", got)
	}
	k.Expires = now.Add(time.Hour)
	if got := k.State(now.Add(time.Hour)); got != trail.KeyExpired {
		t.Errorf("State at expiry: got %s, want expired", got)
	}
	k.Revoked = now
	if got := k.State(now); got != trail.KeyRevoked {
		t.Errorf("State after revocation: got %s, want revoked", got)
	}
}

func TestPrincipalRequire(t *testing.T) {
	var nobody *trail.Principal
	reader := &trail.Principal{KeyID: "r", Scopes: []trail.Scope{trail.ScopeRead}}
	for _, tt := range []struct {
		name  string
		p     *trail.Principal
		scope trail.Scope
		want  string
	}{
		{"nobody", nobody, trail.ScopeRead, trail.EUNAUTHORIZED},
		{"open", trail.OpenPrincipal, trail.ScopeAdmin, ""},
		{"has", reader, trail.ScopeRead, ""},
		{"lacks", reader, trail.ScopeWrite, trail.EFORBIDDEN},
	} {
		if got := trail.ErrorCode(tt.p.Require(tt.scope)); got != tt.want {
			t.Errorf("%s: Require(%s): got %q, want %q", tt.name, tt.scope, got, tt.want)
		}
	}
}

func TestPrincipalContext(t *testing.T) {
	ctx := t.Context()
	if p := trail.PrincipalFromContext(ctx); p != nil {
		t.Fatalf("PrincipalFromContext of a bare context: got %+v, want nil", p)
	}
	p := &trail.Principal{KeyID: "k"}
	if got := trail.PrincipalFromContext(trail.NewContextWithPrincipal(ctx, p)); got != p {
		t.Fatalf("PrincipalFromContext: got %+v, want %+v", got, p)
	}
}

func TestNarrowFilter(t *testing.T) {
	readA := &trail.Principal{KeyID: "a", Scopes: []trail.Scope{trail.ScopeRead}, Tenant: "A"}
	readAll := &trail.Principal{KeyID: "r", Scopes: []trail.Scope{trail.ScopeRead}}
	audit := &trail.Principal{KeyID: "au", Scopes: []trail.Scope{trail.ScopeAudit}}
	writer := &trail.Principal{KeyID: "w", Scopes: []trail.Scope{trail.ScopeWrite}}
	for _, tt := range []struct {
		name       string
		p          *trail.Principal
		tenant     string
		wantTenant string
		wantCode   string
	}{
		{"bound, no tenant", readA, "", "A", ""},
		{"bound, own tenant", readA, "A", "A", ""},
		{"bound, other tenant", readA, "B", "", trail.EFORBIDDEN},
		{"unbound", readAll, "B", "B", ""},
		{"audit", audit, "", "", ""},
		{"open", trail.OpenPrincipal, "B", "B", ""},
		{"writer", writer, "", "", trail.EFORBIDDEN},
		{"nobody", nil, "", "", trail.EUNAUTHORIZED},
	} {
		f := &trail.Filter{Tenant: tt.tenant}
		err := tt.p.NarrowFilter(f)
		if got := trail.ErrorCode(err); got != tt.wantCode {
			t.Errorf("%s: got code %q, want %q", tt.name, got, tt.wantCode)
			continue
		}
		if err == nil && f.Tenant != tt.wantTenant {
			t.Errorf("%s: got tenant %q, want %q", tt.name, f.Tenant, tt.wantTenant)
		}
	}
}

func TestCheckVisible(t *testing.T) {
	readA := &trail.Principal{KeyID: "a", Scopes: []trail.Scope{trail.ScopeRead}, Tenant: "A"}
	if err := readA.CheckVisible("A"); err != nil {
		t.Errorf("own tenant: got %v, want nil", err)
	}
	for _, tenant := range []string{"B", ""} {
		if err := readA.CheckVisible(tenant); !errors.Is(err, trail.ErrNotFound) {
			t.Errorf("tenant %q: got %v, want ErrNotFound", tenant, err)
		}
	}
	audit := &trail.Principal{KeyID: "au", Scopes: []trail.Scope{trail.ScopeAudit}}
	if err := audit.CheckVisible("B"); err != nil {
		t.Errorf("audit: got %v, want nil", err)
	}
	writer := &trail.Principal{KeyID: "w", Scopes: []trail.Scope{trail.ScopeWrite}}
	if got := trail.ErrorCode(writer.CheckVisible("")); got != trail.EFORBIDDEN {
		t.Errorf("writer: got %q, want %q", got, trail.EFORBIDDEN)
	}
}

func TestCheckEvents(t *testing.T) {
	billing := &trail.Principal{KeyID: "b", Scopes: []trail.Scope{trail.ScopeWrite}, Tenant: "A", Source: "billing"}
	ev := func(tenant, source string) *trail.Event {
		return &trail.Event{Tenant: tenant, Source: trail.Source{Service: source}}
	}

	events := []*trail.Event{ev("", ""), ev("A", "billing")}
	if err := billing.CheckEvents(events); err != nil {
		t.Fatalf("conforming batch: got %v, want nil", err)
	}
	for i, e := range events {
		if e.Tenant != "A" || e.Source.Service != "billing" {
			t.Errorf("item %d: got tenant %q source %q, want A and billing", i, e.Tenant, e.Source.Service)
		}
	}

	events = []*trail.Event{ev("", ""), ev("B", ""), ev("", "auth")}
	err := billing.CheckEvents(events)
	var te *trail.Error
	if !errors.As(err, &te) || te.Code != trail.EFORBIDDEN {
		t.Fatalf("spoofing batch: got %v, want EFORBIDDEN", err)
	}
	var got []int
	for _, it := range te.Items {
		got = append(got, it.Index)
	}
	if !slices.Equal(got, []int{1, 2}) {
		t.Errorf("refused items: got %v, want [1 2]", got)
	}
	if events[0].Tenant != "" {
		t.Errorf("refused batch was changed: item 0 tenant got %q, want \"\"", events[0].Tenant)
	}

	reader := &trail.Principal{KeyID: "r", Scopes: []trail.Scope{trail.ScopeRead}}
	if got := trail.ErrorCode(reader.CheckEvents(events)); got != trail.EFORBIDDEN {
		t.Errorf("reader writes: got %q, want %q", got, trail.EFORBIDDEN)
	}
	if err := trail.OpenPrincipal.CheckEvents([]*trail.Event{ev("B", "auth")}); err != nil {
		t.Errorf("open principal: got %v, want nil", err)
	}
}

func TestRateLimitErrorCode(t *testing.T) {
	err := error(&trail.RateLimitError{Policy: "key", Quota: 2, Window: time.Second, RetryAfter: time.Second, Message: "slow down"})
	if got := trail.ErrorCode(err); got != trail.ERATELIMITED {
		t.Errorf("ErrorCode: got %q, want %q", got, trail.ERATELIMITED)
	}
	if got := trail.ErrorMessage(err); got != "slow down" {
		t.Errorf("ErrorMessage: got %q, want %q", got, "slow down")
	}
}

// TestKeyIDInRecord checks that the writing key's id is in the record
// bytes, that the digest ignores it, and that a client cannot send it.
func TestKeyIDInRecord(t *testing.T) {
	in := `{"id":"e1","action":"a.b","actor":{"id":"u"},"source":{"service":"s"}}`
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	prepare := func(keyID string) *trail.Prepared {
		t.Helper()
		e, err := trail.ParseEvent([]byte(in), trail.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		p := &trail.Principal{KeyID: keyID, Scopes: []trail.Scope{trail.ScopeWrite}}
		if err := p.CheckEvents([]*trail.Event{e}); err != nil {
			t.Fatal(err)
		}
		prep, err := trail.Prepare(e, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		return prep
	}
	a, b := prepare("ka"), prepare("kb")
	want := `{"id":"e1","log":"main","seq":0,"received_at":"2026-01-02T03:04:05Z","key_id":"ka","time":"2026-01-02T03:04:05Z","actor":{"id":"u"},"action":"a.b","source":{"service":"s"},"outcome":"unknown"}`
	if got := string(a.Entry("main", 0).Bytes); got != want {
		t.Fatalf("record bytes:\ngot  %s\nwant %s", got, want)
	}
	if a.Digest != b.Digest {
		t.Errorf("digest depends on the writing key; want a replay by another key to match")
	}
	open := trail.OpenPrincipal
	e, _ := trail.ParseEvent([]byte(in), trail.DefaultLimits)
	if err := open.CheckEvents([]*trail.Event{e}); err != nil {
		t.Fatal(err)
	}
	if prep, _ := trail.Prepare(e, now, nil); strings.Contains(string(prep.Entry("main", 0).Bytes), "key_id") {
		t.Errorf("open mode wrote a key_id: %s", prep.Entry("main", 0).Bytes)
	}
	spoof := `{"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"key_id":"admin"}`
	if _, err := trail.ParseEvent([]byte(spoof), trail.DefaultLimits); trail.ErrorCode(err) != trail.EINVALID || !strings.Contains(err.Error(), "key_id") {
		t.Errorf("client-sent key_id: got %v, want EINVALID naming key_id", err)
	}
}

func TestParseEventDefaultSource(t *testing.T) {
	lim := trail.DefaultLimits
	lim.DefaultSource = "billing"
	for _, in := range []string{`{"action":"a.b","actor":{"id":"u"}}`, `{"action":"a.b","actor":{"id":"u"},"source":{"host":"h"}}`} {
		e, err := trail.ParseEvent([]byte(in), lim)
		if err != nil || e.Source.Service != "billing" {
			t.Errorf("ParseEvent(%s): got %+v, %v; want source.service billing", in, e, err)
		}
	}
	// A named source stays, for CheckEvents to judge.
	if e, err := trail.ParseEvent([]byte(`{"action":"a.b","actor":{"id":"u"},"src_service":"auth"}`), lim); err != nil || e.Source.Service != "auth" {
		t.Errorf("legacy src_service: got %+v, %v; want auth", e, err)
	}
}
