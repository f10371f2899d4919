package telemetry

import (
	"context"
	"encoding/hex"
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
		// Both ids in hex from one allocation: every line written while a
		// file is processed gets them.
		tid, sid := sc.TraceID(), sc.SpanID()
		var buf [2*len(tid) + 2*len(sid)]byte
		hex.Encode(buf[:2*len(tid)], tid[:])
		hex.Encode(buf[2*len(tid):], sid[:])
		ids := string(buf[:])
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", ids[:2*len(tid)]), slog.String("span_id", ids[2*len(tid):]))
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
