package pipeline

import (
	"context"
	"errors"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// A recorded file span gets a child span per step, with the step's error;
// an unrecorded one gets none, and the step runs in the file's span.
func TestStepSpansOnlyUnderARecordedFileSpan(t *testing.T) {
	p, _ := benchPipeline(t)
	for _, recorded := range []bool{true, false} {
		rec := tracetest.NewSpanRecorder()
		sampler := sdktrace.AlwaysSample()
		if !recorded {
			sampler = sdktrace.NeverSample()
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
		p.tracer = tp.Tracer("test")
		ctx, file := p.tracer.Start(context.Background(), "file")
		var stepSpan trace.SpanContext
		err := p.span(ctx, "claim", func(ctx context.Context) error {
			stepSpan = trace.SpanContextFromContext(ctx)
			return errors.New("EIO")
		})
		file.End()
		if stepErr := (*stepError)(nil); !errors.As(err, &stepErr) || stepErr.step != "claim" {
			t.Fatalf("recorded=%v: error %v does not name the step", recorded, err)
		}
		if !stepSpan.IsValid() || stepSpan.TraceID() != file.SpanContext().TraceID() {
			t.Fatalf("recorded=%v: the step ran outside the file's trace", recorded)
		}
		ended := rec.Ended()
		if !recorded {
			if len(ended) != 0 || stepSpan.SpanID() != file.SpanContext().SpanID() {
				t.Fatalf("unrecorded: %d spans recorded, step span %v, file span %v", len(ended), stepSpan.SpanID(), file.SpanContext().SpanID())
			}
			continue
		}
		if len(ended) != 2 || ended[0].Name() != "claim" || ended[0].Parent().SpanID() != file.SpanContext().SpanID() ||
			ended[0].Status().Description != "EIO" || stepSpan.SpanID() != ended[0].SpanContext().SpanID() {
			t.Fatalf("recorded: spans %v", ended)
		}
	}
}
