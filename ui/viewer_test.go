package ui_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
	"github.com/trail-audit/trail/internal/testserver"
	"github.com/trail-audit/trail/ui"
)

// TestViewer signs in with a tenant key, filters and pages through 500
// events, opens a record with the keyboard, verifies it in the page, then
// edits its stored bytes and sees verification fail with the reason.
func TestViewer(t *testing.T) {
	srv := testserver.MustOpen(t, testserver.Config{Auth: &auth.Config{}, UI: &ui.Config{}})
	mustIngest(t, srv, invoices(500))
	mustIngest(t, srv, []string{`{"tenant":"globex","action":"invoice.paid","actor":{"id":"g1"},"source":{"service":"billing"}}`})
	testserver.WaitCheckpoint(t, srv.URL, srv.Verifier, 501)
	_, key, err := srv.Keys.CreateKey(t.Context(), &trail.Key{Name: "acme support", Scopes: []trail.Scope{trail.ScopeRead}, Tenant: "acme"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := MustOpenBrowser(t)

	run(t, ctx, "open /ui/", chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.ID("cred")))
	loadMs := eval[float64](t, ctx, `(() => { const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime })()`)
	t.Logf("the page loaded in %.1f ms", loadMs)
	run(t, ctx, "sign in", chromedp.SendKeys(chromedp.ID("cred"), key), chromedp.Click(chromedp.CSS(`#signin-form button`)))
	waitJS(t, ctx, "first page", `document.querySelectorAll('#rows tr').length === 100`)
	if got := eval[string](t, ctx, `document.getElementById('who').textContent`); !strings.Contains(got, "tenant acme") {
		t.Errorf("who: got %q, want it to name tenant acme", got)
	}
	if got := eval[bool](t, ctx, `sessionStorage.getItem('trail.credential') === null && !document.cookie.includes('trail_')`); !got {
		t.Errorf("credential: got it readable by the page (sessionStorage or document.cookie), want it only in the HttpOnly cookie")
	}
	screenshot(t, ctx, "viewer-search")

	// Filter by a prefix: the address bar carries GET /logs's parameter.
	run(t, ctx, "filter", chromedp.SendKeys(chromedp.ID("f-action"), "invoice.*"), chromedp.Click(chromedp.ID("search")))
	waitJS(t, ctx, "filtered URL", `location.search === '?action=invoice.*' || location.search === '?action=invoice.%2A'`)
	// Infinite scroll: scrolling down loads pages until the 400 matches end.
	waitJS(t, ctx, "all 400 invoice.paid rows",
		`(window.scrollTo(0, document.body.scrollHeight), document.querySelectorAll('#rows tr').length === 400 && document.getElementById('more').hidden)`)
	if got := eval[int](t, ctx, `[...document.querySelectorAll('#rows tr td:nth-child(3)')].filter(td => td.textContent !== 'invoice.paid').length`); got != 0 {
		t.Errorf("rows with another action: got %d, want 0", got)
	}
	waitJS(t, ctx, "histogram", `document.querySelectorAll('#hist rect').length > 10`)
	if got := eval[string](t, ctx, `document.getElementById('hist-caption').textContent`); !strings.HasPrefix(got, "400 matching") {
		t.Errorf("histogram caption: got %q, want 400 matching events", got)
	}

	// Clicking an actor filters by it, keeping the action: u9 did 50 of
	// the invoice.paid events.
	run(t, ctx, "click actor", chromedp.Click(chromedp.CSS(`#rows tr:first-child td:nth-child(2) button`)))
	waitJS(t, ctx, "actor filter", `new URLSearchParams(location.search).get('actor') === 'u9' && document.querySelectorAll('#rows tr').length === 50`)

	// Keyboard: Enter on a focused row opens it.
	id := eval[string](t, ctx, `document.querySelector('#rows tr').dataset.id`)
	run(t, ctx, "open with Enter", chromedp.Focus(chromedp.CSS(`#rows tr`)), chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, "detail", `!document.getElementById('detail').hidden && document.getElementById('raw').textContent.includes('"seq"')`)
	if got := eval[string](t, ctx, `JSON.parse(document.getElementById('raw').dataset.raw).id`); got != id {
		t.Errorf("detail: got record %q, want %q", got, id)
	}

	// Verify against the pinned key.
	eval[bool](t, ctx, fmt.Sprintf(`document.getElementById('vkey').value = %q; document.getElementById('vkey-save').click(); true`, srv.Verifier))
	run(t, ctx, "verify", chromedp.Click(chromedp.ID("detail-verify")))
	waitJS(t, ctx, "verified", `/^[✓✗]/.test(document.getElementById('verify-result').textContent)`)
	if got := eval[string](t, ctx, `document.getElementById('verify-result').textContent`); !regexp.MustCompile(`^✓ Verified: in trail\.test/main, tree size 50[12], root [A-Za-z0-9+/]{43}=`).MatchString(got) {
		// 501 events and the key's creation event.
		t.Fatalf("verify: got %q, want ✓ with tree size 501 or 502 and the root", got)
	}
	screenshot(t, ctx, "viewer-verified")

	// Edit the record's stored bytes, as a database administrator could.
	testserver.TamperSQLite(t, srv.Path, fmt.Sprintf(
		`UPDATE records SET bytes = CAST(REPLACE(CAST(bytes AS TEXT), '"amount":', '"amount":9') AS BLOB) WHERE id = '%s'`, id))
	eval[bool](t, ctx, `document.getElementById('detail-close').click(); true`)
	run(t, ctx, "reopen", chromedp.Focus(chromedp.CSS(`#rows tr`)), chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, "tampered detail", `!document.getElementById('detail').hidden && document.getElementById('raw').textContent.includes('"amount": 9')`)
	run(t, ctx, "verify again", chromedp.Click(chromedp.ID("detail-verify")))
	waitJS(t, ctx, "verified again", `/^[✓✗]/.test(document.getElementById('verify-result').textContent)`)
	if got := eval[string](t, ctx, `document.getElementById('verify-result').textContent`); !strings.HasPrefix(got, "✗") || !strings.Contains(got, "changed after it was logged") {
		t.Errorf("verify after tampering: got %q, want ✗ saying the record was changed", got)
	}
	screenshot(t, ctx, "viewer-failed")
}

// TestViewerToken opens the viewer as an embedding application does, with
// a tenant-bound viewer token in the address once: the token leaves the
// address bar, and the page shows only that tenant's events.
func TestViewerToken(t *testing.T) {
	srv := testserver.MustOpen(t, testserver.Config{Auth: &auth.Config{}, UI: &ui.Config{FrameAncestors: "https://app.example.com"}})
	mustIngest(t, srv, invoices(30))
	mustIngest(t, srv, []string{
		`{"tenant":"globex","action":"invoice.paid","actor":{"id":"g1"},"source":{"service":"billing"}}`,
		`{"tenant":"globex","action":"invoice.sent","actor":{"id":"g2"},"source":{"service":"billing"}}`,
	})
	token, _, err := srv.Keys.MintToken(t.Context(), "globex", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := MustOpenBrowser(t)
	run(t, ctx, "open with token", chromedp.Navigate(srv.URL+"/ui/?token="+token+"&action=invoice.*"))
	waitJS(t, ctx, "rows", `document.querySelectorAll('#rows tr').length === 2`)
	if got := eval[string](t, ctx, `location.href`); strings.Contains(got, "token") || !strings.Contains(got, "action=invoice") {
		t.Errorf("address: got %q, want the filter without the token", got)
	}
	if got := eval[[]string](t, ctx, `[...document.querySelectorAll('#rows tr td:nth-child(7)')].map(td => td.textContent)`); strings.Join(got, ",") != "globex,globex" {
		t.Errorf("tenants shown: got %v, want only globex", got)
	}
	if got := eval[string](t, ctx, `document.getElementById('who').textContent`); got != "viewer token · tenant globex" {
		t.Errorf("who: got %q, want viewer token · tenant globex", got)
	}
	// A tenant-acme id is as missing to this token as a nonexistent one.
	if got := eval[float64](t, ctx, `fetch('/logs/ev-001').then(r => r.status)`); got != http.StatusNotFound {
		t.Errorf("GET another tenant's record: got %v, want 404", got)
	}

	// Tab reaches every control above the table, then the first row.
	want := eval[[]string](t, ctx, `[...document.querySelectorAll('header button, #filters input, #filters select, #filters button, #tools a, #tools input, #tools summary')].filter(e => e.checkVisibility()).map(e => e.id || e.textContent.trim())`)
	var reached []string
	for range len(want) + 2 {
		run(t, ctx, "Tab", chromedp.KeyEvent(kb.Tab))
		reached = append(reached, eval[string](t, ctx, `(e => e.tagName === 'TR' ? 'row' : e.id || e.textContent.trim())(document.activeElement)`))
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(reached, "\n")+"\n", w+"\n") {
			t.Errorf("Tab: never reached %q; reached %v", w, reached)
		}
	}
}

// TestViewerTail checks that a tailed event appears in the table within
// 2 s of its POST. It runs where GET /logs/stream exists.
func TestViewerTail(t *testing.T) {
	srv := testserver.MustOpen(t, testserver.Config{UI: &ui.Config{}})
	testserver.PostNDJSON(t, srv.URL, testserver.Payments(0, 3)...)
	// Resuming after the first record with limit 1 answers at once.
	resp, err := http.Get(srv.URL + "/logs?order=asc&limit=1")
	if err != nil {
		t.Fatal(err)
	}
	var page struct{ Next string }
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp, err = http.Get(srv.URL + "/logs/stream?limit=1&cursor=" + page.Next); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Skipf("GET /logs/stream: got %d %s, want an event stream; live tail is not served here", resp.StatusCode, ct)
	}
	ctx := MustOpenBrowser(t)
	run(t, ctx, "open", chromedp.Navigate(srv.URL+"/ui/?action=payment.*"))
	waitJS(t, ctx, "rows", `document.querySelectorAll('#rows tr').length === 3`)
	run(t, ctx, "tail on", chromedp.Click(chromedp.ID("tail")))
	waitJS(t, ctx, "live", `document.getElementById('tail-state').textContent === 'Live'`)
	start := time.Now()
	id := testserver.PostNDJSON(t, srv.URL, testserver.Payments(3, 1)...)[0].ID
	waitJS(t, ctx, "tailed row", fmt.Sprintf(`document.querySelector('#rows tr:first-child').dataset.id === %q`, id))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("tailed event: appeared %s after its POST, want within 2s", d)
	}
	if got := eval[int](t, ctx, `document.querySelectorAll('#rows tr').length`); got != 4 {
		t.Errorf("rows after the tail: got %d, want 4", got)
	}
}

// TestViewerNotCovered verifies a record from the row's button before any
// signed checkpoint covers it: the page says so, retries, and shows ✓ once
// the next checkpoint is signed.
func TestViewerNotCovered(t *testing.T) {
	// Checkpoints at most every 5 s: the second record waits for one.
	srv := testserver.MustOpen(t, testserver.Config{UI: &ui.Config{}, CheckpointInterval: 5 * time.Second})
	ctx := MustOpenBrowser(t)
	run(t, ctx, "open", chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.ID("app")))
	testserver.PostNDJSON(t, srv.URL, testserver.Payments(0, 1)...)
	testserver.WaitCheckpoint(t, srv.URL, srv.Verifier, 1)
	testserver.PostNDJSON(t, srv.URL, testserver.Payments(1, 1)...)
	run(t, ctx, "search", chromedp.Click(chromedp.ID("search")))
	waitJS(t, ctx, "rows", `document.querySelectorAll('#rows tr').length === 2`)
	run(t, ctx, "verify the new row", chromedp.Click(chromedp.CSS(`#rows tr:first-child button.verify`)))
	waitJS(t, ctx, "not covered", `document.querySelector('#rows tr:first-child .vresult').textContent.startsWith('Not yet covered')`)
	waitJS(t, ctx, "covered", `document.querySelector('#rows tr:first-child .vresult').textContent === '✓'`)
	if got := eval[string](t, ctx, `document.querySelector('#rows tr:first-child .vresult').title`); !strings.Contains(got, "tree size 2") {
		t.Errorf("row verification: got title %q, want tree size 2", got)
	}
}
