// Package telemetry sets up logs, traces and metrics: JSON logs on stdout
// with trace ids, and OpenTelemetry over OTLP/HTTP where an endpoint is
// configured through the standard OTEL_* variables.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/log/global"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/edge/nfs-watcher-uploader/internal/pipeline"
)

// ServiceName is the default OTEL_SERVICE_NAME.
const ServiceName = "nfs-watcher-uploader"

// Options that do not come from OTEL_* variables.
type Options struct {
	// MetricsAddr serves a Prometheus scrape endpoint at /metrics ("" = off).
	MetricsAddr string
	Level       slog.Leveler
}

// Telemetry holds what the rest of the program reports to.
type Telemetry struct {
	Logger   *slog.Logger
	Observer pipeline.Observer
	// WrapHTTP instruments one route.
	WrapHTTP func(route string, h http.Handler) http.Handler
	// MetricsURL is the Prometheus endpoint's address when enabled.
	MetricsURL string

	inst     *instruments
	shutdown []func(context.Context) error
}

// signalOn reports whether a signal has an OTLP endpoint and is not
// switched off: with none, nothing tries to export and nothing logs errors.
func signalOn(getenv func(string) string, signal string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(getenv("OTEL_"+signal+"_EXPORTER"), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// Setup configures telemetry from the standard OTEL_* variables. The OTLP
// exporters read their endpoint, headers, timeout and compression from the
// process environment themselves; getenv decides which ones exist.
func Setup(ctx context.Context, getenv func(string) string, stdout io.Writer, o Options) (*Telemetry, error) {
	if o.Level == nil {
		o.Level = slog.LevelInfo
	}
	t := &Telemetry{}
	// The SDK's own diagnostics (retries, dropped batches) would repeat
	// every few seconds while a collector is away: keep them out of stdout
	// and report export failures through a rate-limited handler.
	otel.SetLogger(logr.Discard())

	// Later detectors win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the default name.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(ServiceName)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}

	// Traces: always a real provider, so log lines carry trace ids even
	// when nothing is exported. Then spans are not recorded, only
	// numbered: recording five spans per file (attributes, events, end
	// processing) for no reader cost more CPU than a small file's copy.
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if signalOn(getenv, "TRACES") {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("trace exporter: %w", err)
		}
		topts = append(topts, sdktrace.WithBatcher(exp))
	} else {
		topts = append(topts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	tp := sdktrace.NewTracerProvider(topts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.shutdown = append(t.shutdown, tp.Shutdown)

	// Metrics: OTLP push and/or Prometheus pull over the same instruments.
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	metricsRead := false // some reader collects the instruments
	if signalOn(getenv, "METRICS") {
		metricsRead = true
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("metric exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	var promReg *prometheus.Registry
	if o.MetricsAddr != "" {
		metricsRead = true
		promReg = prometheus.NewRegistry()
		exp, err := otelprom.New(otelprom.WithRegisterer(promReg))
		if err != nil {
			return nil, fmt.Errorf("prometheus exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(exp))
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	otel.SetMeterProvider(mp)
	t.shutdown = append(t.shutdown, mp.Shutdown)

	// Logs: stdout always; the OTel bridge only where an endpoint is set.
	var bridge slog.Handler
	if signalOn(getenv, "LOGS") {
		exp, err := otlploghttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("log exporter: %w", err)
		}
		lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)))
		global.SetLoggerProvider(lp)
		t.shutdown = append(t.shutdown, lp.Shutdown)
		bridge = otelslog.NewHandler(ServiceName, otelslog.WithLoggerProvider(lp))
	}
	t.Logger = NewLogger(stdout, o.Level, bridge)
	otel.SetErrorHandler(newErrorHandler(t.Logger, time.Minute))

	inst, err := newInstruments(mp.Meter(ServiceName))
	if err != nil {
		return nil, err
	}
	t.inst = inst
	t.Observer = inst
	if !metricsRead {
		// No OTLP metrics and no Prometheus endpoint: nothing would ever
		// collect a measurement, so the pipeline's counts (about ten
		// instrument calls per file) are not measured at all.
		t.Observer = pipeline.NopObserver{}
	}

	t.WrapHTTP = func(route string, h http.Handler) http.Handler {
		return otelhttp.NewHandler(h, route, otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(mp))
	}

	if promReg != nil {
		if err := t.servePrometheus(o.MetricsAddr, promReg); err != nil {
			t.Shutdown(ctx)
			return nil, err
		}
	}
	return t, nil
}

func (t *Telemetry) servePrometheus(addr string, reg *prometheus.Registry) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("APP_METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.MetricsURL = "http://" + ln.Addr().String() + "/metrics"
	t.shutdown = append(t.shutdown, srv.Shutdown)
	return nil
}

// ObserveOldestWaiting reports the age of the oldest file that is queued,
// in flight or waiting for a retry; oldest returns the zero time for none.
func (t *Telemetry) ObserveOldestWaiting(oldest func() time.Time) error {
	return t.inst.observeOldest(oldest)
}

// Shutdown flushes and stops every provider, last started first.
func (t *Telemetry) Shutdown(ctx context.Context) {
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		_ = t.shutdown[i](ctx)
	}
}

// errorHandler logs SDK errors (a collector that is away) at most once per
// interval, with how many were held back.
type errorHandler struct {
	log   *slog.Logger
	every time.Duration

	mu   sync.Mutex
	last time.Time
	held int
}

func newErrorHandler(log *slog.Logger, every time.Duration) *errorHandler {
	return &errorHandler{log: log, every: every}
}

func (h *errorHandler) Handle(err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	h.mu.Lock()
	now := time.Now()
	if !h.last.IsZero() && now.Sub(h.last) < h.every {
		h.held++
		h.mu.Unlock()
		return
	}
	held := h.held
	h.last, h.held = now, 0
	h.mu.Unlock()
	h.log.Warn("telemetry export failed", "step", "telemetry", "error", err.Error(), "similar_errors_held_back", held)
}
