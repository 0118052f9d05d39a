package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/testserver"
	"github.com/trail-audit/trail/merkle"
)

// auditLog collects what an Auditor reports.
type auditLog struct{ strings.Builder }

func (l *auditLog) logf(format string, args ...any) { fmt.Fprintf(&l.Builder, format+"\n", args...) }

func (l *auditLog) want(t *testing.T, lines ...string) {
	t.Helper()
	for _, s := range lines {
		if !strings.Contains(l.String(), s) {
			t.Errorf("auditor log: got\n%s\nwant a line with %q", l, s)
		}
	}
}

func newAuditor(s *Server, state *client.AuditState) (*client.Auditor, *auditLog) {
	var l auditLog
	a := client.NewAuditor(client.New(s.URL), s.Verifier, state)
	a.Logf = l.logf
	return a, &l
}

func TestAuditor(t *testing.T) {
	s := MustOpenServer(t, nil)
	ctx := context.Background()
	testserver.PostNDJSON(t, s.URL, testserver.Payments(0, 10)...)
	testserver.WaitCheckpoint(t, s.URL, s.Verifier, 10)

	a, l := newAuditor(s, nil)
	var done, total int64
	var finals int
	a.Progress = func(d, n int64, final bool) {
		done, total = d, n
		if final {
			finals++
		}
	}
	cp, err := a.Audit(ctx, "")
	if err != nil {
		t.Fatalf("audit of an untouched log: %v\n%s", err, l)
	}
	l.want(t, "first checkpoint seen of trail.test/main",
		fmt.Sprintf("audit: %d records re-hashed; dense seqs; root matches the signed checkpoint", cp.Size),
		"tail: no records past the checkpoint")
	if done != cp.Size || total != cp.Size || finals != 1 {
		t.Errorf("progress: got %d/%d with %d final calls, want %d/%d with 1", done, total, finals, cp.Size, cp.Size)
	}
	seen := a.State().Origins[cp.Origin]
	if seen.Size != cp.Size || seen.Root != cp.Hash {
		t.Fatalf("state: got size %d root %v, want %d %v", seen.Size, seen.Root, cp.Size, cp.Hash)
	}

	// The state survives a file, and the next run checks the log grew.
	path := filepath.Join(t.TempDir(), "sub", "state.json")
	if err := a.State().Save(path); err != nil {
		t.Fatal(err)
	}
	state, err := client.LoadAuditState(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := state.Origins[cp.Origin]; got.Size != seen.Size || got.Root != seen.Root || got.Note != seen.Note || !got.Seen.Equal(seen.Seen) {
		t.Fatalf("loaded state: got %+v, want %+v", got, seen)
	}
	testserver.PostNDJSON(t, s.URL, testserver.Payments(10, 3)...)
	testserver.WaitCheckpoint(t, s.URL, s.Verifier, cp.Size+3)

	// Offline, the growth is checked from the records themselves.
	offline, err := client.LoadAuditState(path)
	if err != nil {
		t.Fatal(err)
	}
	body, err := client.New(s.URL).Export(ctx, "", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	a, l = newAuditor(s, offline)
	_, err = a.AuditExport(ctx, body)
	body.Close()
	if err != nil {
		t.Fatalf("offline audit after growth: %v\n%s", err, l)
	}
	l.want(t, fmt.Sprintf("consistency: extends the checkpoint of size %d seen before", cp.Size))

	a, l = newAuditor(s, state)
	if _, err := a.Audit(ctx, ""); err != nil {
		t.Fatalf("audit after growth: %v\n%s", err, l)
	}
	l.want(t, fmt.Sprintf("consistency: extends the checkpoint of size %d seen before", cp.Size))
	if _, err := a.Check(ctx, ""); err != nil {
		t.Fatalf("quick check: %v\n%s", err, l)
	}
	l.want(t, "consistency: same checkpoint as seen before")
}

func TestAuditStateFile(t *testing.T) {
	dir := t.TempDir()
	s, err := client.LoadAuditState(filepath.Join(dir, "missing.json"))
	if err != nil || len(s.Origins) != 0 {
		t.Fatalf("missing file: got %+v, %v, want an empty state", s, err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{"), 0o600)
	if _, err := client.LoadAuditState(bad); err == nil || !strings.Contains(err.Error(), "is corrupt") {
		t.Fatalf("corrupt file: got %v, want an error saying it is corrupt", err)
	}
}

// TestAuditorRejectsRewrittenLog shows an auditor that has seen a
// checkpoint a server, signing with the same key as the same log, whose
// records are not the ones seen.
func TestAuditorRejectsRewrittenLog(t *testing.T) {
	ctx := context.Background()
	key := filepath.Join(t.TempDir(), "trail.key")
	orig := MustOpenServerKey(t, key, nil)
	testserver.PostNDJSON(t, orig.URL, testserver.Payments(0, 10)...)
	testserver.WaitCheckpoint(t, orig.URL, orig.Verifier, 10)
	a, l := newAuditor(orig, nil)
	seen, err := a.Check(ctx, "")
	if err != nil {
		t.Fatalf("check of the original: %v\n%s", err, l)
	}
	path := filepath.Join(t.TempDir(), "state.json")
	if err := a.State().Save(path); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		n    int64
		want string
	}{
		{"shorter", seen.Size - 4, fmt.Sprintf("the log shrank: its checkpoint has size %d but size %d was seen", seen.Size-4, seen.Size)},
		{"same size", seen.Size, fmt.Sprintf("the log forked: size %d had root %v", seen.Size, seen.Hash)},
		{"longer", seen.Size + 3, fmt.Sprintf("the log was rewritten: the checkpoint of size %d does not extend the one of size %d", seen.Size+3, seen.Size)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			other := MustOpenServerKey(t, key, nil)
			testserver.PostNDJSON(t, other.URL, testserver.Payments(100, int(tt.n))...)
			testserver.WaitCheckpoint(t, other.URL, other.Verifier, tt.n)
			for name, run := range map[string]func(*client.Auditor) error{
				"Check": func(a *client.Auditor) error { _, err := a.Check(ctx, ""); return err },
				"Audit": func(a *client.Auditor) error { _, err := a.Audit(ctx, ""); return err },
				"AuditExport": func(a *client.Auditor) error {
					body, err := client.New(other.URL).Export(ctx, "", 0, -1)
					if err != nil {
						return err
					}
					defer body.Close()
					_, err = a.AuditExport(ctx, body)
					return err
				},
			} {
				state, err := client.LoadAuditState(path)
				if err != nil {
					t.Fatal(err)
				}
				a, l := newAuditor(other, state)
				if err := run(a); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: got %v, want %q\n%s", name, err, tt.want, l)
				}
				if got := a.State().Origins[seen.Origin]; got.Size != seen.Size || got.Root != seen.Hash {
					t.Errorf("%s: state after a refusal: got size %d root %v, want the seen %d %v", name, got.Size, got.Root, seen.Size, seen.Hash)
				}
			}
		})
	}

	// A checkpoint signed by another key is refused as such.
	stranger := MustOpenServer(t, nil)
	testserver.PostNDJSON(t, stranger.URL, testserver.Payments(0, 1)...)
	testserver.WaitCheckpoint(t, stranger.URL, stranger.Verifier, 1)
	a = client.NewAuditor(client.New(stranger.URL), orig.Verifier, nil)
	if _, err := a.Check(ctx, ""); !errors.As(err, new(*client.CheckpointError)) {
		t.Fatalf("checkpoint under another key: got %v, want a *client.CheckpointError", err)
	}
}

// editExport returns a handler wrapper that passes the answers of GET
// /export through edit, as a server that lies about its records would.
func editExport(edit func(r *http.Request, body []byte) []byte) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/export" {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(edit(r, rec.Body.Bytes()))
		})
	}
}

// dropSeq removes the record at seq from an export.
func dropSeq(seq int) func(*http.Request, []byte) []byte {
	return func(_ *http.Request, body []byte) []byte {
		var out [][]byte
		for _, line := range bytes.SplitAfter(body, []byte("\n")) {
			if !bytes.Contains(line, []byte(fmt.Sprintf(`"seq":%d,`, seq))) {
				out = append(out, line)
			}
		}
		return bytes.Join(out, nil)
	}
}

func TestAuditorNamesChangedRecord(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		edit    func(*http.Request, []byte) []byte
		wantSeq int64
		want    string
	}{
		{"edited bytes", func(_ *http.Request, b []byte) []byte {
			return bytes.Replace(b, []byte(`"amount":700}`), []byte(`"amount":701}`), 1)
		}, 7, "seq 7: the record was changed"},
		{"deleted record", dropSeq(5), 5, "seq 5: record is missing"},
		// More records than the audit keeps span hashes for (4,096): the
		// record is named by reading its span of the log again.
		{"edited bytes in a long log", func(_ *http.Request, b []byte) []byte {
			return bytes.Replace(b, []byte(`"amount":765400}`), []byte(`"amount":765401}`), 1)
		}, 7654, "seq 7654: the record was changed"},
		{"deleted record in a long log", dropSeq(5000), 5000, "seq 5000: record is missing"},
		{"extra record", func(_ *http.Request, b []byte) []byte {
			return append(b, `{"id":"extra","log":"main","seq":20}`+"\n"...)
		}, 20, "seq 20: the export holds more records than its checkpoint covers (20)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := MustOpenServer(t, editExport(tt.edit))
			n := 20
			if tt.wantSeq > 20 {
				n = 9000
			}
			for i := 0; i < n; i += 3000 {
				testserver.PostNDJSON(t, s.URL, testserver.Payments(i, min(3000, n-i))...)
			}
			testserver.WaitCheckpoint(t, s.URL, s.Verifier, int64(n))
			a, l := newAuditor(s, nil)
			_, err := a.Audit(ctx, "")
			var me *client.MismatchError
			var ae *merkle.AuditError
			switch {
			case err == nil || !strings.Contains(err.Error(), tt.want):
				t.Fatalf("audit: got %v, want %q\n%s", err, tt.want, l)
			case errors.As(err, &me) && me.Seq != tt.wantSeq, errors.As(err, &ae) && ae.Seq != tt.wantSeq:
				t.Fatalf("audit: got %#v, want seq %d", err, tt.wantSeq)
			}
			if len(a.State().Origins) != 0 {
				t.Fatalf("state after a failed audit: got %+v, want nothing seen", a.State().Origins)
			}
		})
	}

	// Offline, the changed record cannot be named.
	s := MustOpenServer(t, editExport(func(_ *http.Request, b []byte) []byte {
		return bytes.Replace(b, []byte(`"amount":300}`), []byte(`"amount":301}`), 1)
	}))
	testserver.PostNDJSON(t, s.URL, testserver.Payments(0, 10)...)
	testserver.WaitCheckpoint(t, s.URL, s.Verifier, 10)
	body, err := client.New(s.URL).Export(ctx, "", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	a, _ := newAuditor(s, nil)
	_, err = a.AuditExport(ctx, body)
	var me *client.MismatchError
	if !errors.As(err, &me) || me.Seq != -1 || !strings.Contains(err.Error(), "but the signed checkpoint says") {
		t.Fatalf("offline audit of an edited export: got %v, want a *client.MismatchError with Seq -1", err)
	}
}

// TestAuditorForgedTail shows records past the checkpoint that no signed
// checkpoint ever covers: a server that did not write them.
func TestAuditorForgedTail(t *testing.T) {
	s := MustOpenServer(t, editExport(func(r *http.Request, b []byte) []byte {
		if r.URL.Query().Get("to") != "end" {
			return b
		}
		return fmt.Appendf(b, `{"id":"forged","log":"main","seq":%s}`+"\n", r.URL.Query().Get("from"))
	}))
	testserver.PostNDJSON(t, s.URL, testserver.Payments(0, 5)...)
	testserver.WaitCheckpoint(t, s.URL, s.Verifier, 5)
	a, l := newAuditor(s, nil)
	a.TailWait = 300 * time.Millisecond
	cp, err := a.Audit(context.Background(), "")
	want := fmt.Sprintf("seq %d: stored but not covered by any signed checkpoint", cp.Size)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("audit: got %v, want %q\n%s", err, want, l)
	}
}
