package testserver

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/merkle"
)

// waitLimit only stops a hung test: nothing is timed against it.
const waitLimit = 30 * time.Second

// WaitCheckpoint polls GET baseURL/checkpoint until the server has signed
// a checkpoint of at least size records (checkpoints are signed off the
// commit path, so a 201 does not mean one covers the record yet). It
// returns the checkpoint and its note. With a verifier key, it also checks
// the note's signature and fails tb if it does not verify; with vkey "",
// it only parses the note.
func WaitCheckpoint(tb testing.TB, baseURL, vkey string, size int64) (trail.Checkpoint, []byte) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	last := "no answer"
	for {
		status, body, err := get(baseURL + "/checkpoint")
		switch {
		case err != nil:
			last = err.Error()
		case status != http.StatusOK:
			last = fmt.Sprintf("%d %s", status, body)
		default:
			cp, err := openNote(body, vkey)
			if err != nil {
				tb.Fatalf("GET /checkpoint: %v", err)
			}
			if cp.Size >= size {
				return cp, body
			}
			last = fmt.Sprintf("size %d", cp.Size)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no signed checkpoint of %d records within %s: got %s, want size >= %d", size, waitLimit, last, size)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openNote(note []byte, vkey string) (trail.Checkpoint, error) {
	if vkey == "" {
		return trail.ParseNote(note)
	}
	return merkle.Open(note, vkey)
}

func get(url string) (int, []byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// PostNDJSON posts lines (events as JSON objects) as one
// application/x-ndjson batch to baseURL/logs, fails tb unless the answer is
// 201, and returns the receipts in line order.
func PostNDJSON(tb testing.TB, baseURL string, lines ...string) []trail.Receipt {
	tb.Helper()
	body := strings.Join(lines, "\n") + "\n"
	resp, err := http.Post(baseURL+"/logs", "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		tb.Fatalf("POST /logs: got %d %s, want 201", resp.StatusCode, b)
	}
	var out struct {
		Receipts []trail.Receipt `json:"receipts"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatalf("POST /logs: decode receipts: %v in %s", err, b)
	}
	if len(out.Receipts) != len(lines) {
		tb.Fatalf("POST /logs: got %d receipts, want %d", len(out.Receipts), len(lines))
	}
	return out.Receipts
}

// Payments returns n events "payment.captured", numbered from first: event
// i has actor.id "u<i>" and data.amount 100*i, so that a test can find and
// edit a given record's bytes ("amount":1700 is event 17).
func Payments(first, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		k := first + i
		lines[i] = fmt.Sprintf(`{"action":"payment.captured","actor":{"id":"u%d"},"source":{"service":"billing"},"data":{"amount":%d}}`, k, k*100)
	}
	return lines
}

// TamperSQLite runs stmts against an embedded store's database file
// directly, as a database administrator could, after dropping trail's
// append-only triggers. The store must be closed.
func TamperSQLite(tb testing.TB, path string, stmts ...string) {
	tb.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		tb.Fatal(err)
	}
	var triggers []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			tb.Fatal(err)
		}
		triggers = append(triggers, name)
	}
	rows.Close()
	for _, s := range triggers {
		stmts = append([]string{"DROP TRIGGER " + s}, stmts...)
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
}
