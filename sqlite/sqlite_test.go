package sqlite_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/sqlite"
	"github.com/trail-audit/trail/storetest"
)

// MustOpenStore opens a store on a new file in a temporary directory and
// closes it when the test ends.
func MustOpenStore(tb testing.TB) *sqlite.Store {
	tb.Helper()
	return mustOpen(tb, sqlite.Config{Path: filepath.Join(tb.TempDir(), "trail.db")})
}

func mustOpen(tb testing.TB, cfg sqlite.Config) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) trail.Store { return MustOpenStore(t) })
}

// openRaw opens the store's file directly, as a tamperer with file access
// would.
func openRaw(t *testing.T, path string, pragmas ...string) *sql.DB {
	t.Helper()
	dsn := path + "?_pragma=busy_timeout(5000)"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// snapshot returns every stored row of records and checkpoints, as text.
func snapshot(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		"SELECT seq, log, id, time, tenant, action, hex(digest), hex(hashes), hex(bytes) FROM records ORDER BY seq",
		"SELECT id, log, size, hex(note) FROM checkpoints ORDER BY id",
		"SELECT key, value FROM meta ORDER BY key",
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, vals...)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}

func TestImmutableSQL(t *testing.T) {
	s := MustOpenStore(t)
	b := storetest.NewBuilder("main")
	entries := storetest.Append(t, s, b, storetest.Events(5)...)
	if err := s.AddCheckpoint(t.Context(), "main", 5, []byte("main\n5\nroot\n\n— sig\n")); err != nil {
		t.Fatal(err)
	}
	copyRow := func(table, cols, override string) string {
		// Re-insert a stored row under its own key, with one column changed.
		return fmt.Sprintf("INSERT OR REPLACE INTO %s (%s) SELECT %s FROM %s ORDER BY rowid DESC LIMIT 1", table, cols, override, table)
	}
	recCols := "seq, log, id, time, received_at, tenant, actor, actor_type, action, target, target_type, source, outcome, digest, hashes, bytes"
	recTampered := strings.Replace(recCols, "bytes", "CAST('{}' AS BLOB)", 1)

	for _, tt := range []struct {
		name, sql string
	}{
		{"update bytes", "UPDATE records SET bytes = CAST('{}' AS BLOB) WHERE seq = 2"},
		{"update index column", "UPDATE records SET action = 'tampered' WHERE seq = 2"},
		{"update all", "UPDATE records SET outcome = 'success'"},
		{"delete one", "DELETE FROM records WHERE seq = 2"},
		{"delete last", "DELETE FROM records WHERE seq = 4"},
		{"delete all", "DELETE FROM records"},
		{"insert or replace by seq", copyRow("records", recCols, recTampered)},
		{"replace by id", "REPLACE INTO records (" + recCols + ") SELECT 100, " + strings.TrimPrefix(recTampered, "seq, ") + " FROM records WHERE seq = 2"},
		{"upsert", "INSERT INTO records (" + recCols + ") SELECT " + recCols + " FROM records WHERE seq = 2 ON CONFLICT (seq) DO UPDATE SET bytes = CAST('{}' AS BLOB)"},
		{"plain insert of a taken seq", "INSERT INTO records (" + recCols + ") SELECT " + recCols + " FROM records WHERE seq = 2"},
		{"update checkpoint", "UPDATE checkpoints SET note = CAST('forged' AS BLOB)"},
		{"delete checkpoint", "DELETE FROM checkpoints"},
		{"replace checkpoint", copyRow("checkpoints", "id, log, size, note, created", "id, log, size, CAST('forged' AS BLOB), created")},
		{"update log name", "UPDATE meta SET value = 'other' WHERE key = 'log'"},
		{"delete log name", "DELETE FROM meta WHERE key = 'log'"},
		{"replace log name", "INSERT OR REPLACE INTO meta (key, value) VALUES ('log', 'other')"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := openRaw(t, s.Path(), "recursive_triggers(ON)")
			before := snapshot(t, db)
			_, err := db.Exec(tt.sql)
			if err == nil {
				t.Fatalf("%s: got no error, want the statement refused", tt.sql)
			}
			if after := snapshot(t, db); after != before {
				t.Fatalf("%s: rows changed:\nbefore\n%s\nafter\n%s", tt.sql, before, after)
			}
			if !strings.Contains(tt.name, "plain insert") && !strings.Contains(err.Error(), "append-only") {
				t.Fatalf("%s: got error %v, want one saying the table is append-only", tt.sql, err)
			}
		})
	}

	// Through the store, every record reads back byte-identical.
	for _, want := range entries {
		got, err := s.Get(t.Context(), want.ID)
		if err != nil || !bytes.Equal(got.Bytes, want.Bytes) {
			t.Fatalf("Get(%s) after the attempts: got %v, want the original bytes", want.ID, err)
		}
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "trail.db")
	s, err := sqlite.Open(sqlite.Config{Path: path, Log: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	b := storetest.NewBuilder("node-1")
	want := storetest.Append(t, s, b, storetest.Events(10)...)
	note := []byte("node-1\n10\nroot\n\n— sig\n")
	if err := s.AddCheckpoint(t.Context(), "node-1", 10, note); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	if _, err := sqlite.Open(sqlite.Config{Path: path}); err == nil || !strings.Contains(err.Error(), `holds log "node-1"`) {
		t.Fatalf("Open with the default log: got %v, want an error naming log node-1", err)
	}
	if _, err := sqlite.Open(sqlite.Config{Path: path, Log: "other"}); err == nil || !strings.Contains(err.Error(), `holds log "node-1", not "other"`) {
		t.Fatalf("Open with log other: got %v, want an error naming both logs", err)
	}

	s = mustOpen(t, sqlite.Config{Path: path, Log: "node-1"})
	h, err := s.Head(t.Context())
	if err != nil || h != (trail.Head{Log: "node-1", Size: 10}) {
		t.Fatalf("Head after reopen: got %+v, %v; want {node-1 10}", h, err)
	}
	for _, w := range want {
		got, err := s.Get(t.Context(), w.ID)
		if err != nil || !bytes.Equal(got.Bytes, w.Bytes) || got.Seq != w.Seq {
			t.Fatalf("Get(%s) after reopen: got %v, want seq %d and the original bytes", w.ID, err, w.Seq)
		}
	}
	if got, err := s.Checkpoint(t.Context(), "node-1", -1); err != nil || !bytes.Equal(got, note) {
		t.Fatalf("Checkpoint after reopen: got %q, %v; want %q", got, err, note)
	}

	// The log continues where it was, from hashes read back.
	b2 := storetest.LoadBuilder(t, s, "node-1")
	storetest.Append(t, s, b2, storetest.Events(3)...)
	if h, _ := s.Head(t.Context()); h.Size != 13 {
		t.Fatalf("Head: got size %d, want 13", h.Size)
	}
}

func TestConflictNamesID(t *testing.T) {
	s := MustOpenStore(t)
	b := storetest.NewBuilder("main")
	stored := storetest.Append(t, s, b, storetest.Events(3)...)
	ev := storetest.Events(2)
	ev[1].ID = stored[2].ID
	err := s.Append(t.Context(), b.Clone().Entries(t, ev...))
	if !errors.Is(err, trail.ErrDuplicateID) || !strings.Contains(err.Error(), stored[2].ID) {
		t.Fatalf("got %v, want trail.ErrDuplicateID naming id %s", err, stored[2].ID)
	}
}

// A second Store on the same file is another writer: the first seq it takes
// from the other fences it, and then its Head reports the true size.
func TestFencedByAnotherWriter(t *testing.T) {
	s1 := MustOpenStore(t)
	s2 := mustOpen(t, sqlite.Config{Path: s1.Path()})
	storetest.Append(t, s1, storetest.NewBuilder("main"), storetest.Events(4)...)

	err := s2.Append(t.Context(), storetest.NewBuilder("main").Entries(t, storetest.Events(2)...))
	if !errors.Is(err, trail.ErrFenced) {
		t.Fatalf("Append at a seq the other writer took: got %v, want ErrFenced", err)
	}
	if h, _ := s2.Head(t.Context()); h.Size != 4 {
		t.Fatalf("Head after fencing: got size %d, want 4", h.Size)
	}
	if h, _ := s1.Head(t.Context()); h.Size != 4 {
		t.Fatalf("Head of the first writer: got size %d, want 4", h.Size)
	}
}

func TestListUsesIndexes(t *testing.T) {
	s := MustOpenStore(t)
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	after := &trail.Cursor{Time: since.UnixNano(), Log: "main", Seq: 5}
	for _, tt := range []struct {
		name  string
		f     trail.Filter
		index string
	}{
		{"all", trail.Filter{Limit: 100}, "records_time"},
		{"all desc after", trail.Filter{Limit: 100, Desc: true, After: after}, "records_time"},
		{"tenant", trail.Filter{Tenant: "t", Limit: 100, After: after}, "records_tenant"},
		{"actor", trail.Filter{Actor: "u", Since: since, Limit: 100, After: after}, "records_actor"},
		{"action", trail.Filter{Action: "a.b", Desc: true, Limit: 100, After: after}, "records_action"},
		{"target", trail.Filter{Target: "x", Limit: 100}, "records_target"},
		{"since", trail.Filter{Since: since, Until: since.Add(time.Hour), Limit: 100}, "records_time"},
		{"outcome", trail.Filter{Outcome: "failure", Limit: 100}, "records_time"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := sqlite.ExplainList(t, s, &tt.f)
			if !strings.Contains(plan, "USING INDEX "+tt.index) && !strings.Contains(plan, "USING COVERING INDEX "+tt.index) {
				t.Fatalf("plan:\n%s\nwant it to use index %s", plan, tt.index)
			}
			if strings.Contains(plan, "TEMP B-TREE") {
				t.Fatalf("plan:\n%s\nwant no sort: the index gives the order", plan)
			}
		})
	}
	// An action prefix is a range on the action index, whose keys alone
	// are sorted before the rows of one page are read.
	plan := sqlite.ExplainList(t, s, &trail.Filter{Action: "account.", ActionPrefix: true, Limit: 100})
	if !strings.Contains(plan, "COVERING INDEX records_action (action>? AND action<?)") {
		t.Fatalf("action prefix plan:\n%s\nwant a range on the covering action index", plan)
	}
}

// benchEvents returns n events of a realistic size (about 450 bytes stored).
func benchEvents(n int) []*trail.Event {
	out := make([]*trail.Event, n)
	for i := range out {
		tm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
		out[i] = &trail.Event{
			Time:      &tm,
			Tenant:    fmt.Sprintf("tenant-%d", i%50),
			Actor:     trail.Actor{ID: fmt.Sprintf("user-%d", i%5000), Type: "user", Name: "Some Body", IP: "10.1.2.3"},
			Action:    []string{"account.created", "account.suspended", "invoice.paid", "user.login"}[i%4],
			Target:    &trail.Target{ID: fmt.Sprintf("acct-%d", i%20000), Type: "account"},
			Source:    trail.Source{Service: "billing", Host: "billing-7f9c"},
			Outcome:   trail.OutcomeSuccess,
			RequestID: fmt.Sprintf("req-%016x", i),
			Data:      json.RawMessage(fmt.Sprintf(`{"plan":"pro","amount_cents":%d,"currency":"EUR","reason":"scheduled renewal"}`, i)),
		}
	}
	return out
}

// BenchmarkAppend measures durable appends: every commit is synced. Ids are
// UUIDv7, as the ingest layer makes them, except in the random-ids case,
// which shows the cost of ids that land all over the id index.
func BenchmarkAppend(b *testing.B) {
	v7 := func() string { return uuid.Must(uuid.NewV7()).String() }
	for _, bb := range []struct {
		name  string
		batch int
		newID func() string
	}{
		{"batch=1", 1, v7},
		{"batch=100", 100, v7},
		{"batch=1000", 1000, v7},
		{"batch=1000/random-ids", 1000, storetest.NewID},
	} {
		batch := bb.batch
		b.Run(bb.name, func(b *testing.B) {
			s := MustOpenStore(b)
			bl := storetest.NewBuilder("main")
			bl.NewID = bb.newID
			evs := benchEvents(batch)
			var bytesPerEvent int
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				entries := bl.Entries(b, evs...)
				bytesPerEvent = len(entries[0].Bytes)
				c := cpuTime()
				b.StartTimer()
				if err := s.Append(b.Context(), entries); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += cpuTime() - c
				b.StartTimer()
			}
			events := float64(b.N * batch)
			b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
			// CPU time per event is steadier than events/s on a shared
			// machine; it counts every thread of the process.
			b.ReportMetric(float64(cpu.Microseconds())/events, "cpu-µs/event")
			b.ReportMetric(float64(bytesPerEvent), "B/event")
		})
	}
}

// cpuTime returns the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
