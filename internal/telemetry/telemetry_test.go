package telemetry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/pipeline"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestSignalOnNeedsAnEndpoint(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, false},
	}
	for _, c := range cases {
		if got := signalOn(env(c.env), "TRACES"); got != c.want {
			t.Errorf("%v: traces on = %v, want %v", c.env, got, c.want)
		}
	}
}

// A collector that is away must not flood the logs.
func TestExportErrorsAreRateLimited(t *testing.T) {
	var buf bytes.Buffer
	h := newErrorHandler(NewLogger(&buf, slog.LevelInfo, nil), time.Hour)
	for range 100 {
		h.Handle(errors.New("connection refused"))
	}
	if n := strings.Count(buf.String(), "telemetry export failed"); n != 1 {
		t.Fatalf("%d log lines for 100 errors, want 1:\n%s", n, buf.String())
	}
	h.last = time.Now().Add(-2 * time.Hour)
	h.Handle(errors.New("connection refused"))
	if !strings.Contains(buf.String(), `"similar_errors_held_back":99`) {
		t.Fatalf("held-back count not reported:\n%s", buf.String())
	}
}

// With no trace endpoint, spans are not recorded, yet every log line made
// inside one still carries its trace and span ids.
func TestUnexportedSpansStillNumberLogLines(t *testing.T) {
	var buf bytes.Buffer
	tel, err := Setup(context.Background(), func(string) string { return "" }, &buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	ctx, span := otel.Tracer("test").Start(context.Background(), "file")
	defer span.End()
	if span.IsRecording() {
		t.Error("span is recorded although no trace exporter is configured")
	}
	sc := span.SpanContext()
	if !sc.IsValid() {
		t.Fatal("span has no valid trace and span id")
	}
	tel.Logger.InfoContext(ctx, "file uploaded")
	for _, want := range []string{`"trace_id":"` + sc.TraceID().String() + `"`, `"span_id":"` + sc.SpanID().String() + `"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log line lacks %s:\n%s", want, buf.String())
		}
	}
}

// The session attribute follows each measurement's session, also when the
// session changes and changes back.
func TestMetricsCarryEachMeasurementsSession(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	inst, err := newInstruments(mp.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, s := range []string{"a", "b", "a", "a", "c"} {
		inst.FileProcessed(ctx, s, 10, time.Millisecond, time.Second)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "files.processed" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				v, _ := dp.Attributes.Value("session")
				got[v.AsString()] += dp.Value
			}
		}
	}
	if want := map[string]int64{"a": 3, "b": 1, "c": 1}; !maps.Equal(got, want) {
		t.Fatalf("files.processed by session %v, want %v", got, want)
	}
}

// Without an OTLP metrics endpoint or a Prometheus address nothing is
// measured; with one, the pipeline's counts reach it.
func TestMeasuredOnlyWhenCollected(t *testing.T) {
	ctx := context.Background()
	none, err := Setup(ctx, func(string) string { return "" }, io.Discard, Options{})
	if err != nil {
		t.Fatal(err)
	}
	none.Shutdown(ctx)
	if _, ok := none.Observer.(pipeline.NopObserver); !ok {
		t.Errorf("observer %T although nothing collects metrics", none.Observer)
	}
	prom, err := Setup(ctx, func(string) string { return "" }, io.Discard, Options{MetricsAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer prom.Shutdown(ctx)
	prom.Observer.FileProcessed(ctx, "s1", 10, time.Millisecond, time.Second)
	resp, err := http.Get(prom.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^files_processed_total\{.*session="s1".*\} 1$`).Match(body) {
		t.Fatalf("scrape has no files_processed_total 1 for session s1:\n%s", body)
	}
}
