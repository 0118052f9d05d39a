package ui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/testserver"
)

// browserWait bounds every browser step: slow under -race on a shared
// machine, but never a hung test.
const browserWait = 30 * time.Second

// MustOpenBrowser starts Debian's chromium headless with a fresh profile
// and returns a tab's context. Without chromium the test is skipped, except
// in CI (CI=true), where a missing browser fails it.
func MustOpenBrowser(tb testing.TB) context.Context {
	tb.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("chromium is not installed: %v (apt-get install chromium)", err)
		}
		tb.Skipf("chromium is not installed: %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1200, 760),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	tb.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs browser actions within browserWait and fails tb on error.
func run(tb testing.TB, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// eval returns the value of a JavaScript expression in the page, awaited
// if it is a promise.
func eval[T any](tb testing.TB, ctx context.Context, expr string) T {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript expression until it is true; one that throws
// (an element not there yet) counts as false.
func waitJS(tb testing.TB, ctx context.Context, what, expr string) {
	tb.Helper()
	deadline := time.Now().Add(browserWait)
	for {
		if eval[bool](tb, ctx, "(() => { try { return !!("+expr+") } catch { return false } })()") {
			return
		}
		if time.Now().After(deadline) {
			page := eval[string](tb, ctx, `document.body.innerText.slice(0, 1500)`)
			tb.Fatalf("%s: got false after %s, want %s; the page reads:\n%s", what, browserWait, expr, page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the viewport as docs/images/NAME.png when
// TRAIL_SCREENSHOTS is set, so that the README's images are regenerated
// on purpose only.
func screenshot(tb testing.TB, ctx context.Context, name string) {
	tb.Helper()
	if os.Getenv("TRAIL_SCREENSHOTS") == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join("..", "docs", "images", name+".png"), png, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// mustIngest stores events through the server's ingester: the setup of a
// test, not what it tests.
func mustIngest(tb testing.TB, srv *testserver.Server, lines []string) {
	tb.Helper()
	events, err := trail.ParseNDJSON([]byte(strings.Join(lines, "\n")), trail.DefaultLimits)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := srv.Ingester.Submit(tb.Context(), events); err != nil {
		tb.Fatalf("Submit: %v", err)
	}
}

// invoices returns n events of tenant acme spread over the last three
// days: every fifth is account.suspended, the rest invoice.paid; actor
// u<i%10>, target inv-<i>.
func invoices(n int) []string {
	lines := make([]string, n)
	now := time.Now().UTC()
	for i := range lines {
		action, outcome := "invoice.paid", "success"
		if i%5 == 0 {
			action, outcome = "account.suspended", "failure"
		}
		at := now.Add(-time.Duration(n-i) * 72 * time.Hour / time.Duration(n)).Format(time.RFC3339)
		lines[i] = fmt.Sprintf(`{"id":"ev-%03d","time":%q,"tenant":"acme","action":%q,"actor":{"id":"u%d","type":"user"},"target":{"id":"inv-%d","type":"invoice"},"source":{"service":"billing"},"outcome":%q,"data":{"amount":%d}}`,
			i, at, action, i%10, i, outcome, i*100)
	}
	return lines
}
