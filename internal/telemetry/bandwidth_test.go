package telemetry

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape returns the value of every sample of the gauge name on /metrics.
func scrape(t *testing.T, url, name string) []float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	var out []float64
	for _, m := range fams[name].GetMetric() {
		out = append(out, m.GetGauge().GetValue())
	}
	return out
}

// The limit in force is a gauge in bytes per second; with none it has no
// sample, as /v1/status shows null.
func TestBandwidthLimitGauge(t *testing.T) {
	tel, err := Setup(context.Background(), func(string) string { return "" }, io.Discard, Options{MetricsAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	var limit atomic.Pointer[int64]
	if err := tel.ObserveBandwidthLimit(limit.Load); err != nil {
		t.Fatal(err)
	}
	const name = "bandwidth_limit_bytes_per_second"
	for _, want := range []int64{2 << 20, 0, 256 << 10} {
		if want == 0 {
			limit.Store(nil)
		} else {
			limit.Store(&want)
		}
		got := scrape(t, tel.MetricsURL, name)
		switch {
		case want == 0 && len(got) != 0:
			t.Errorf("no limit: %s = %v, want no sample", name, got)
		case want != 0 && (len(got) != 1 || got[0] != float64(want)):
			t.Errorf("limit %d: %s = %v, want one sample %d", want, name, got, want)
		}
	}
}
