package ingest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
)

// prep prepares an event; n is its content, so one id with two n is a
// conflict and with one n a replay. An empty id is a server-made one.
func prep(tb testing.TB, id string, n int) *trail.Prepared {
	tb.Helper()
	return prepIn(tb, "", id, n)
}

// prepIn prepares an event of tenant, as a tenant-bound key's event
// arrives once trail.Principal.CheckEvents has filled its tenant.
func prepIn(tb testing.TB, tenant, id string, n int) *trail.Prepared {
	tb.Helper()
	idField := ""
	if id != "" {
		idField = fmt.Sprintf(`"id":%q,`, id)
	}
	e, err := trail.ParseEvent([]byte(fmt.Sprintf(`{%s"action":"a.b","actor":{"id":"u"},"source":{"service":"s"},"data":{"n":%d}}`, idField, n)), trail.DefaultLimits)
	if err != nil {
		tb.Fatal(err)
	}
	e.Tenant = tenant
	p, err := trail.Prepare(e, time.Unix(1700000000, 0), func() string { return fmt.Sprintf("server-%d", n) })
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

type ev struct {
	id string
	n  int
}

// want is one request's outcome: the seq behind each receipt, or a
// conflict naming conflict.
type want struct {
	seqs     []int64
	created  bool
	conflict string
}

func TestPlan(t *testing.T) {
	for _, tt := range []struct {
		name   string
		stored []ev // stored at seqs 0, 1, …
		group  [][]ev
		want   []want
		seqs   []int64 // of the entries to append
	}{
		{"new events get dense seqs in group order",
			nil,
			[][]ev{{{"", 1}, {"a", 2}}, {{"", 3}}},
			[]want{{seqs: []int64{10, 11}, created: true}, {seqs: []int64{12}, created: true}},
			[]int64{10, 11, 12}},
		{"a stored id with the same content replays",
			[]ev{{"a", 1}, {"b", 2}},
			[][]ev{{{"b", 2}}},
			[]want{{seqs: []int64{1}}},
			nil},
		{"a stored id with other content refuses only its request",
			[]ev{{"a", 1}},
			[][]ev{{{"x", 5}, {"a", 9}}, {{"y", 6}}},
			[]want{{conflict: `id "a" is already stored with other content (log main, seq 0)`}, {seqs: []int64{10}, created: true}},
			[]int64{10}},
		{"a mixed request stores only its new events",
			[]ev{{"a", 1}},
			[][]ev{{{"a", 1}, {"b", 2}}},
			[]want{{seqs: []int64{0, 10}, created: true}},
			[]int64{10}},
		{"an id taken earlier in the group replays",
			nil,
			[][]ev{{{"a", 1}}, {{"a", 1}}},
			[]want{{seqs: []int64{10}, created: true}, {seqs: []int64{10}}},
			[]int64{10}},
		{"an id taken earlier in the group with other content conflicts",
			nil,
			[][]ev{{{"a", 1}}, {{"a", 2}, {"b", 3}}, {{"b", 3}}},
			[]want{{seqs: []int64{10}, created: true}, {conflict: `id "a" is already stored with other content (log main, seq 10)`}, {seqs: []int64{11}, created: true}},
			[]int64{10, 11}},
		{"an id repeated inside a request",
			nil,
			[][]ev{{{"a", 1}, {"a", 1}}, {{"b", 1}, {"b", 2}}},
			[]want{{seqs: []int64{10, 10}, created: true}, {conflict: `id "b" appears twice in the batch with different content`}},
			[]int64{10}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stored := map[string]*trail.Entry{}
			for i, s := range tt.stored {
				stored[s.id] = prep(t, s.id, s.n).Entry("main", int64(i))
			}
			group := make([][]*trail.Prepared, len(tt.group))
			for i, r := range tt.group {
				for _, e := range r {
					group[i] = append(group[i], prep(t, e.id, e.n))
				}
			}
			entries, outs := plan(group, stored, 10, "main")
			var seqs []int64
			for _, e := range entries {
				if e.Log != "main" {
					t.Errorf("entry %s: got log %q, want main", e.ID, e.Log)
				}
				seqs = append(seqs, e.Seq)
			}
			if !slices.Equal(seqs, tt.seqs) {
				t.Fatalf("entries: got seqs %v, want %v", seqs, tt.seqs)
			}
			for i, w := range tt.want {
				got := outs[i].result()
				if w.conflict != "" {
					if trail.ErrorCode(got.err) != trail.ECONFLICT || !strings.Contains(got.err.Error(), w.conflict) {
						t.Fatalf("request %d: got %v, want ECONFLICT: %s", i, got.err, w.conflict)
					}
					continue
				}
				if got.err != nil {
					t.Fatalf("request %d: got %v, want receipts", i, got.err)
				}
				var rs []int64
				for _, r := range got.res.Receipts {
					rs = append(rs, r.Seq)
				}
				if !slices.Equal(rs, w.seqs) || got.res.Created != w.created {
					t.Fatalf("request %d: got seqs %v created %v, want %v created %v", i, rs, got.res.Created, w.seqs, w.created)
				}
			}
		})
	}
}

// TestPlanConflictAcrossTenants checks that a conflict with another
// tenant's record does not name where that record is: its writer could not
// read it, so its log and seq are none of its business. A conflict within
// one tenant still names them, to help the producer find its mistake.
func TestPlanConflictAcrossTenants(t *testing.T) {
	stored := map[string]*trail.Entry{"a": prepIn(t, "A", "a", 1).Entry("main", 7)}
	for _, tt := range []struct {
		tenant string
		want   string
	}{
		{"B", `id "a" is already taken; choose a new one`},
		{"", `id "a" is already taken; choose a new one`},
		{"A", `id "a" is already stored with other content (log main, seq 7)`},
	} {
		_, outs := plan([][]*trail.Prepared{{prepIn(t, tt.tenant, "a", 2)}}, stored, 10, "main")
		err := outs[0].result().err
		if trail.ErrorCode(err) != trail.ECONFLICT || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("tenant %q: got %v, want ECONFLICT: %s", tt.tenant, err, tt.want)
		}
		if tt.tenant != "A" && strings.Contains(err.Error(), "seq") {
			t.Errorf("tenant %q: got %v, want no log or seq", tt.tenant, err)
		}
	}
}
