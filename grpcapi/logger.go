package grpcapi

import (
	"context"
	"encoding/json"
	"strconv"

	"connectrpc.com/connect"
	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/gen/logger"
	"github.com/trail-audit/trail/gen/logger/loggerconnect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Bounds of the proof of concept's reads, which have no paging: ReadLog
// answers the newest readLogLimit records, ReadLogById the newest
// readByIDLimit of one user (docs/API.md).
const (
	readLogLimit  = 100
	readByIDLimit = 1000
)

// loggerService implements the proof of concept's logger.LoggerService
// over trail: a Logger is an event in the legacy shape of DESIGN.md §2.
type loggerService struct{ s *server }

var _ loggerconnect.LoggerServiceHandler = (*loggerService)(nil)

// legacyEvent is a Logger as the legacy JSON of POST /logs, so that it is
// validated and mapped by trail.ParseEvent like any legacy event.
type legacyEvent struct {
	UserID        string      `json:"user_id"`
	EventType     string      `json:"event_type,omitempty"`
	Timestamp     string      `json:"timestamp,omitempty"`
	SrcService    string      `json:"src_service,omitempty"`
	InvariantData *legacyData `json:"invariant_data,omitempty"`
	VariantData   *legacyData `json:"variant_data,omitempty"`
}

// legacyData is InvariantData or VariantData as JSON, the severity by name.
type legacyData struct {
	Msg      string `json:"msg"`
	Severity string `json:"severity"`
	Trace    string `json:"trace"`
}

// CreateLog appends one event and answers with its seq in its log, the
// only integer id a trail record has.
func (l *loggerService) CreateLog(ctx context.Context, req *connect.Request[logger.CreateRequest]) (*connect.Response[logger.CreateResponse], error) {
	s := l.s
	res, err := s.createLog(ctx, req.Header().Get("Traceparent"), req.Msg.GetLogger())
	if err != nil {
		return nil, s.error(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&logger.CreateResponse{Success: true, Id: uint64(res.Receipts[0].Seq)}), nil
}

func (s *server) createLog(ctx context.Context, traceparent string, m *logger.Logger) (*trail.Result, error) {
	if m == nil {
		return nil, trail.Errorf(trail.EINVALID, "field \"logger\" is required")
	}
	j := legacyEvent{
		UserID: strconv.FormatUint(m.GetUserId(), 10), EventType: m.GetEventType(), SrcService: m.GetSrcService(),
	}
	if m.Timestamp != nil {
		j.Timestamp = timeString(m.Timestamp)
	}
	if d := m.GetInvariantData(); d != nil {
		j.InvariantData = &legacyData{Msg: d.GetMsg(), Severity: d.GetSeverity().String(), Trace: d.GetTrace()}
	}
	if d := m.GetVariantData(); d != nil {
		j.VariantData = &legacyData{Msg: d.GetMsg(), Severity: d.GetSeverity().String(), Trace: d.GetTrace()}
	}
	events, err := s.parseEvents(ctx, traceparent, [][]byte{marshal(j)})
	if err != nil {
		return nil, err
	}
	return s.ingester.Submit(ctx, events)
}

// ReadLog returns the newest records the caller may read, newest first.
func (l *loggerService) ReadLog(ctx context.Context, req *connect.Request[logger.ReadRequest]) (*connect.Response[logger.ReadResponse], error) {
	out, err := l.s.readLoggers(ctx, &trail.Filter{}, readLogLimit)
	if err != nil {
		return nil, l.s.error(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&logger.ReadResponse{Logger: out}), nil
}

// ReadLogById returns the newest records whose actor.id is the user's id,
// newest first.
func (l *loggerService) ReadLogById(ctx context.Context, req *connect.Request[logger.ReadRequestById]) (*connect.Response[logger.ReadResponseById], error) {
	f := &trail.Filter{Actor: strconv.FormatUint(req.Msg.GetUserId(), 10)}
	out, err := l.s.readLoggers(ctx, f, readByIDLimit)
	if err != nil {
		return nil, l.s.error(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&logger.ReadResponseById{Logger: out}), nil
}

// readLoggers lists up to limit records of f, narrowed to the caller, as
// Loggers.
func (s *server) readLoggers(ctx context.Context, f *trail.Filter, limit int) ([]*logger.Logger, error) {
	if err := trail.PrincipalFromContext(ctx).NarrowFilter(f); err != nil {
		return nil, err
	}
	f.Desc, f.Limit = true, limit
	entries, err := s.store.List(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]*logger.Logger, 0, len(entries))
	for _, e := range entries {
		m, err := loggerOf(e.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// loggerOf maps a stored record back onto a Logger. A non-numeric actor.id
// reads as user_id 0; data.invariant and data.app that are not {msg,
// severity, trace} read as their JSON text in msg.
func loggerOf(b []byte) (*logger.Logger, error) {
	var r trail.Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	uid, _ := strconv.ParseUint(r.Actor.ID, 10, 64)
	m := &logger.Logger{
		UserId: uid, EventType: r.Action, Timestamp: timestamppb.New(r.Time), SrcService: r.Source.Service,
	}
	var data struct {
		Invariant json.RawMessage `json:"invariant"`
		App       json.RawMessage `json:"app"`
	}
	if json.Unmarshal(r.Data, &data) != nil {
		return m, nil // data is always an object; nothing to map otherwise
	}
	if data.Invariant != nil {
		msg, sev, trace := legacyFields(data.Invariant)
		m.InvariantData = &logger.InvariantData{Msg: msg, Severity: sev, Trace: trace}
	}
	if data.App != nil {
		msg, sev, trace := legacyFields(data.App)
		m.VariantData = &logger.VariantData{Msg: msg, Severity: sev, Trace: trace}
	}
	return m, nil
}

// legacyFields reads {msg, severity, trace}, the severity by name or
// number.
func legacyFields(raw json.RawMessage) (string, logger.Severity, string) {
	var d struct {
		Msg      string          `json:"msg"`
		Severity json.RawMessage `json:"severity"`
		Trace    string          `json:"trace"`
	}
	if json.Unmarshal(raw, &d) != nil {
		return string(raw), logger.Severity_INFO, ""
	}
	var name string
	var num int32
	sev := logger.Severity_INFO
	if json.Unmarshal(d.Severity, &name) == nil {
		if v, ok := logger.Severity_value[name]; ok {
			sev = logger.Severity(v)
		}
	} else if json.Unmarshal(d.Severity, &num) == nil {
		sev = logger.Severity(num)
	}
	return d.Msg, sev, d.Trace
}
