package grpcapi_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/trail-audit/trail/gen/logger"
	"github.com/trail-audit/trail/internal/testserver"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestLoggerCreateThenReadById is the proof of concept's client flow with
// grpc-go: CreateLog, then ReadLogById returns it, mapped as documented,
// and REST serves the same record.
func TestLoggerCreateThenReadById(t *testing.T) {
	s := MustOpenServer(t, testserver.Config{})
	conn := MustDialGRPC(t, s)
	ctx := t.Context()
	when := time.Date(2026, 3, 4, 5, 6, 7, 800, time.UTC)
	in := &logger.Logger{
		UserId: 42, EventType: "User.Login", Timestamp: timestamppb.New(when), SrcService: "auth",
		InvariantData: &logger.InvariantData{Msg: "logged in", Severity: logger.Severity_WARNING, Trace: "t-1"},
		VariantData:   &logger.VariantData{Msg: "from <web>", Severity: logger.Severity_FATAL},
	}
	for i := range 2 {
		resp, err := invoke[logger.CreateResponse](ctx, conn, "/logger.LoggerService/CreateLog", &logger.CreateRequest{Logger: in})
		if err != nil {
			t.Fatalf("CreateLog: %v", err)
		}
		if !resp.Success || resp.Id != uint64(i) {
			t.Errorf("CreateLog %d: got success %v id %d, want true %d (the seq)", i, resp.Success, resp.Id, i)
		}
	}
	other := &logger.Logger{UserId: 7, EventType: "x.y", SrcService: "auth"}
	if _, err := invoke[logger.CreateResponse](ctx, conn, "/logger.LoggerService/CreateLog", &logger.CreateRequest{Logger: other}); err != nil {
		t.Fatalf("CreateLog: %v", err)
	}

	got, err := invoke[logger.ReadResponseById](ctx, conn, "/logger.LoggerService/ReadLogById", &logger.ReadRequestById{UserId: 42})
	if err != nil {
		t.Fatalf("ReadLogById: %v", err)
	}
	want := proto.Clone(in).(*logger.Logger)
	want.EventType = "user.login" // lowercased, as the legacy JSON path does
	if len(got.Logger) != 2 {
		t.Fatalf("ReadLogById(42): got %d loggers, want 2", len(got.Logger))
	}
	for _, g := range got.Logger {
		if !proto.Equal(g, want) {
			t.Errorf("ReadLogById(42): got %v, want %v", g, want)
		}
	}
	all, err := invoke[logger.ReadResponse](ctx, conn, "/logger.LoggerService/ReadLog", &logger.ReadRequest{})
	if err != nil {
		t.Fatalf("ReadLog: %v", err)
	}
	if len(all.Logger) != 3 || all.Logger[0].UserId != 7 {
		t.Errorf("ReadLog: got %v, want 3 loggers, newest (user 7) first", all.Logger)
	}

	// The record REST serves holds the mapping of docs/API.md.
	var page struct{ Events []json.RawMessage }
	if err := json.Unmarshal(restGet(t, s, "/logs?actor=42&limit=1", ""), &page); err != nil || len(page.Events) != 1 {
		t.Fatalf("GET /logs?actor=42: %v, %d events", err, len(page.Events))
	}
	var rec struct {
		Actor  struct{ ID string }
		Action string
		Time   time.Time
		Source struct{ Service string }
		Data   map[string]map[string]string
	}
	if err := json.Unmarshal(page.Events[0], &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Actor.ID != "42" || rec.Action != "user.login" || !rec.Time.Equal(when) || rec.Source.Service != "auth" {
		t.Errorf("record: got %s, want actor.id 42, action user.login, time %v, source.service auth", page.Events[0], when)
	}
	wantData := map[string]map[string]string{
		"invariant": {"msg": "logged in", "severity": "WARNING", "trace": "t-1"},
		"app":       {"msg": "from <web>", "severity": "FATAL", "trace": ""},
	}
	for k, v := range wantData {
		for f, fv := range v {
			if rec.Data[k][f] != fv {
				t.Errorf("record data.%s.%s: got %q, want %q", k, f, rec.Data[k][f], fv)
			}
		}
	}
}

// TestLoggerCreateInvalid checks that a Logger breaking the event schema is
// refused as POST /logs refuses it.
func TestLoggerCreateInvalid(t *testing.T) {
	s := MustOpenServer(t, testserver.Config{})
	conn := MustDialGRPC(t, s)
	for _, c := range []struct {
		name string
		in   *logger.Logger
	}{
		{"no logger", nil},
		{"no event_type", &logger.Logger{UserId: 1, SrcService: "s"}},
		{"no src_service", &logger.Logger{UserId: 1, EventType: "a.b"}},
		{"bad event_type", &logger.Logger{UserId: 1, EventType: "a b", SrcService: "s"}},
		{"timestamp out of range", &logger.Logger{UserId: 1, EventType: "a.b", SrcService: "s", Timestamp: timestamppb.New(time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC))}},
	} {
		_, err := invoke[logger.CreateResponse](t.Context(), conn, "/logger.LoggerService/CreateLog", &logger.CreateRequest{Logger: c.in})
		if got := codeOf(err); got != "InvalidArgument" {
			t.Errorf("%s: got %s (%v), want InvalidArgument", c.name, got, err)
		}
	}
}
