package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"
)

// progress shows a long job's advance: on a terminal, one line rewritten in
// place several times a second; elsewhere, a plain line every few seconds,
// so that logs stay readable.
type progress struct {
	w     io.Writer
	tty   bool
	label string
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, label string) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, tty: ok && term.IsTerminal(int(f.Fd())), label: label, start: time.Now()}
}

// update reports done units of total (total <= 0: unknown), with a rate.
func (p *progress) update(done, total int64, unit string) {
	now := time.Now()
	every := 5 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	p.print(done, total, unit, false)
}

// finish prints the final state and ends the line.
func (p *progress) finish(done, total int64, unit string) {
	p.print(done, total, unit, true)
}

func (p *progress) print(done, total int64, unit string, final bool) {
	el := time.Since(p.start)
	rate := float64(done) / max(el.Seconds(), 1e-9)
	line := fmt.Sprintf("%s: %d %s", p.label, done, unit)
	if total > 0 {
		line = fmt.Sprintf("%s: %d/%d %s (%.0f%%)", p.label, done, total, unit, 100*float64(done)/float64(total))
	}
	line += fmt.Sprintf(", %.0f/s, %s", rate, el.Round(100*time.Millisecond))
	switch {
	case p.tty && final:
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	default:
		fmt.Fprintln(p.w, line)
	}
}

// progressFunc returns a progress callback for the SDK (client.Auditor)
// that shows a progress with label on w, from its first call on.
func progressFunc(w io.Writer, label, unit string) func(done, total int64, final bool) {
	var p *progress
	return func(done, total int64, final bool) {
		if p == nil {
			p = newProgress(w, label)
		}
		if final {
			p.finish(done, total, unit)
		} else {
			p.update(done, total, unit)
		}
	}
}
