package telemetry

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// BenchmarkFileUploadedLine is the one log line every file gets, written
// inside its span.
func BenchmarkFileUploadedLine(b *testing.B) {
	log := NewLogger(io.Discard, slog.LevelInfo, nil)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	found := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		log.InfoContext(ctx, "file uploaded", "session", "bench", "file", "4KiB-01000.bin", "blob", "20261127/bench/4KiB-01000.bin",
			"bytes", int64(4096), "upload_ms", int64(3), "latency_ms", time.Since(found).Milliseconds(), "attempts", 1)
	}
}

// BenchmarkFileProcessedMetrics is the metrics of one uploaded file, with
// a Prometheus endpoint collecting them.
func BenchmarkFileProcessedMetrics(b *testing.B) {
	tel, err := Setup(context.Background(), func(string) string { return "" }, io.Discard, Options{MetricsAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		tel.Observer.QueueDelta(ctx, 1)
		tel.Observer.QueueDelta(ctx, -1)
		tel.Observer.FileProcessed(ctx, "bench", 4096, 3*time.Millisecond, 2*time.Second)
	}
}
