package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is a minimal OTLP/HTTP collector that keeps what it gets.
type otlpReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	spans   []*tracepb.Span
	metrics []*metricspb.Metric
	logs    []*logspb.LogRecord
	res     []*commonpb.KeyValue
}

func startOTLP(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	mux := http.NewServeMux()
	decode := func(w http.ResponseWriter, req *http.Request, m proto.Message) bool {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return false
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err == nil {
			err = proto.Unmarshal(b, m)
		}
		if err != nil {
			t.Errorf("OTLP payload on %s: %v", req.URL.Path, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return false
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		return true
	}
	serve(mux, "/v1/traces", decode, &coltrace.ExportTraceServiceResponse{}, func(m *coltrace.ExportTraceServiceRequest) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, rs := range m.ResourceSpans {
			r.res = rs.GetResource().GetAttributes()
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
	})
	serve(mux, "/v1/metrics", decode, &colmetrics.ExportMetricsServiceResponse{}, func(m *colmetrics.ExportMetricsServiceRequest) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, rm := range m.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				r.metrics = append(r.metrics, sm.Metrics...)
			}
		}
	})
	serve(mux, "/v1/logs", decode, &collogs.ExportLogsServiceResponse{}, func(m *collogs.ExportLogsServiceRequest) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, rl := range m.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				r.logs = append(r.logs, sl.LogRecords...)
			}
		}
	})
	r.Server = httptest.NewServer(mux)
	t.Cleanup(r.Close)
	return r
}

// serve decodes one signal's export requests into keep and answers with resp.
func serve[M any, PM interface {
	*M
	proto.Message
}](mux *http.ServeMux, path string, decode func(http.ResponseWriter, *http.Request, proto.Message) bool, resp proto.Message, keep func(PM)) {
	body, _ := proto.Marshal(resp)
	mux.HandleFunc("POST "+path, func(w http.ResponseWriter, req *http.Request) {
		m := PM(new(M))
		if !decode(w, req, m) {
			return
		}
		keep(m)
		_, _ = w.Write(body)
	})
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			out[kv.Key] = v.GetStringValue()
		default:
			out[kv.Key] = strconv.FormatInt(v.GetIntValue(), 10)
		}
	}
	return out
}

// lastSum is the newest cumulative value of a counter whose points carry
// the session attribute.
func lastSum(ms []*metricspb.Metric, name, session string) (int64, bool) {
	var v int64
	found := false
	for _, m := range ms {
		if m.Name != name || m.GetSum() == nil {
			continue
		}
		for _, dp := range m.GetSum().DataPoints {
			if attrs(dp.Attributes)["session"] == session {
				v, found = dp.GetAsInt(), true
			}
		}
	}
	return v, found
}

// One uploaded file produces: a "file" span with claim/stage/upload/complete
// children carrying session, name, size and outcome; counters with the right
// values; log records with the span's trace id; no probe spans; and the same
// counter on the Prometheus endpoint.
func TestTelemetryForOneFile(t *testing.T) {
	recv := startOTLP(t)
	s := newSvc(t)
	s.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = recv.URL
	s.env["OTEL_SERVICE_NAME"] = "nwu-under-test"
	s.env["OTEL_RESOURCE_ATTRIBUTES"] = "site=test-edge"
	s.env["OTEL_METRIC_EXPORT_INTERVAL"] = "200"
	s.env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
	s.env["OTEL_BLRP_SCHEDULE_DELAY"] = "100"
	s.env["APP_METRICS_ADDR"] = "127.0.0.1:0"
	s.start()
	for range 3 {
		s.get("/healthz")
		s.get("/readyz")
	}
	in, date := s.startSession("otel")
	data := bytes.Repeat([]byte("telemetry "), 1234)
	sum := writeFile(t, in, "t.bin", data)
	waitBlobs(t, s.container(), map[string]string{date + "/otel/t.bin": sum}, 20*time.Second)
	s.status()

	// Prometheus shows the same counter.
	promURL := s.promURL()
	line := regexp.MustCompile(`(?m)^files_processed(_file)?_total\{[^}]*session="otel"[^}]*\} (\S+)$`)
	eventually(t, 10*time.Second, "files_processed on /metrics", func() bool {
		resp, err := http.Get(promURL)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := line.FindSubmatch(b)
		return m != nil && string(m[2]) == "1"
	})

	// SIGTERM flushes every provider.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.waitExit(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()

	if a := attrs(recv.res); a["service.name"] != "nwu-under-test" || a["site"] != "test-edge" {
		t.Errorf("resource attributes %v", a)
	}
	var file *tracepb.Span
	children := map[string]*tracepb.Span{}
	httpSpans := 0
	for _, sp := range recv.spans {
		a := attrs(sp.Attributes)
		if strings.Contains(sp.Name, "healthz") || strings.Contains(sp.Name, "readyz") ||
			strings.Contains(a["url.path"], "healthz") || strings.Contains(a["url.path"], "readyz") {
			t.Errorf("probe request traced: %s %v", sp.Name, a)
		}
		if sp.Kind == tracepb.Span_SPAN_KIND_SERVER {
			httpSpans++
		}
		if sp.Name == "file" {
			file = sp
		}
	}
	if httpSpans < 2 {
		t.Errorf("want server spans for start and status, got %d", httpSpans)
	}
	if file == nil {
		t.Fatalf("no file span among %d spans", len(recv.spans))
	}
	fa := attrs(file.Attributes)
	if fa["session"] != "otel" || fa["file.name"] != "t.bin" || fa["file.size"] != strconv.Itoa(len(data)) || fa["outcome"] != "uploaded" {
		t.Errorf("file span attributes %v", fa)
	}
	for _, sp := range recv.spans {
		if bytes.Equal(sp.ParentSpanId, file.SpanId) {
			children[sp.Name] = sp
		}
	}
	for _, step := range []string{"claim", "stage", "upload", "complete"} {
		if children[step] == nil {
			t.Errorf("file span has no %q child (children: %v)", step, keys(children))
		}
	}

	want := map[string]int64{"files.processed": 1, "bytes.uploaded": int64(len(data))}
	for name, v := range want {
		if got, ok := lastSum(recv.metrics, name, "otel"); !ok || got != v {
			t.Errorf("%s = %d (found %v), want %d", name, got, ok, v)
		}
	}
	sizeSeen := false
	for _, m := range recv.metrics {
		if m.Name == "file.size" && m.Unit == "By" {
			for _, dp := range m.GetHistogram().GetDataPoints() {
				sizeSeen = sizeSeen || dp.Count == 1 && dp.GetSum() == float64(len(data))
			}
		}
		if m.Name == "upload.duration" && m.Unit != "s" {
			t.Errorf("upload.duration unit %q", m.Unit)
		}
	}
	if !sizeSeen {
		t.Error("file.size histogram has no point for the file")
	}

	traceID := hex.EncodeToString(file.TraceId)
	exported := false
	for _, lr := range recv.logs {
		if lr.GetBody().GetStringValue() == "file uploaded" && hex.EncodeToString(lr.TraceId) == traceID {
			exported = true
		}
	}
	if !exported {
		t.Errorf("no exported log record 'file uploaded' with trace id %s among %d records", traceID, len(recv.logs))
	}
	onStdout := false
	for _, l := range s.logs.lines() {
		if l["msg"] == "file uploaded" && l["trace_id"] == traceID && l["span_id"] != nil {
			onStdout = true
		}
	}
	if !onStdout {
		t.Errorf("stdout has no 'file uploaded' line with trace_id %s", traceID)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// With no endpoint configured nothing is exported and nothing complains,
// through a whole upload and shutdown.
func TestNoTelemetryEndpointIsQuiet(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("quiet")
	sum := writeFile(t, in, "q.bin", []byte("quiet"))
	waitBlobs(t, s.container(), map[string]string{date + "/quiet/q.bin": sum}, 20*time.Second)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.waitExit(15 * time.Second)
	for _, l := range s.logs.lines() {
		if l["level"] == "WARN" || l["level"] == "ERROR" {
			t.Errorf("log line during a clean run: %v", l)
		}
	}
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(strings.ToLower(l), "export") || strings.Contains(strings.ToLower(l), "otlp") {
			t.Errorf("export noise: %s", l)
		}
	}
}
