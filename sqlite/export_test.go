package sqlite

import (
	"strings"
	"testing"

	"github.com/trail-audit/trail"
)

// ExplainList returns SQLite's query plan for List(f), one step a line.
func ExplainList(tb testing.TB, s *Store, f *trail.Filter) string {
	tb.Helper()
	q, args := s.listQuery(f)
	rows, err := s.rdb.QueryContext(tb.Context(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		tb.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			tb.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}
