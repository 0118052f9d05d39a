package httpapi

import (
	"context"
	"log/slog"
)

// contextHandler adds to every record logged with a request's context the
// request's id and, if it carried a W3C traceparent, its trace id, so that
// each line the API writes can be tied to its request and its trace even
// where a call site names neither.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	have := map[string]bool{}
	r.Attrs(func(a slog.Attr) bool {
		have[a.Key] = true
		return true
	})
	if id := requestID(ctx); id != "" && !have["request_id"] {
		r.AddAttrs(slog.String("request_id", id))
	}
	if id, _ := ctx.Value(traceIDKey{}).(string); id != "" && !have["trace_id"] {
		r.AddAttrs(slog.String("trace_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

type traceIDKey struct{}
