package telemetry

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// traceHandler adds trace_id and span_id to records made inside a span and
// copies every record to an optional second handler (the OTel log bridge).
type traceHandler struct {
	slog.Handler
	also slog.Handler
}

// NewLogger writes JSON lines to w; also (may be nil) receives each record too.
func NewLogger(w io.Writer, level slog.Leveler, also slog.Handler) *slog.Logger {
	return slog.New(traceHandler{Handler: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}), also: also})
}

func (h traceHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, l) || (h.also != nil && h.also.Enabled(ctx, l))
}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.also != nil && h.also.Enabled(ctx, r.Level) {
		_ = h.also.Handle(ctx, r.Clone())
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := traceHandler{Handler: h.Handler.WithAttrs(as)}
	if h.also != nil {
		n.also = h.also.WithAttrs(as)
	}
	return n
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	n := traceHandler{Handler: h.Handler.WithGroup(name)}
	if h.also != nil {
		n.also = h.also.WithGroup(name)
	}
	return n
}
