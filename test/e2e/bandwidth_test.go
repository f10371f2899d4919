package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// bandwidthOf is the limit /v1/status shows: bytes/s (0 for null) and source.
func bandwidthOf(t *testing.T, m map[string]any) (int64, any) {
	t.Helper()
	for _, k := range []string{"bandwidth_limit", "bandwidth_source", "bandwidth_schedule", "bandwidth_next_change"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("no %s in %v", k, m)
		}
	}
	return num(m, "bandwidth_limit"), m["bandwidth_source"]
}

// uploadMs is the upload time the service logged for file name.
func uploadMs(s *svc, name string) (int64, bool) {
	for _, l := range s.logs.lines() {
		if l["msg"] == "file uploaded" && l["file"] == name {
			ms, _ := l["upload_ms"].(float64)
			return int64(ms), true
		}
	}
	return 0, false
}

// The configured limit shows in status; PUT overrides it at once for the
// uploads, survives a restart, and DELETE returns to the configuration,
// which also survives a restart.
func TestBandwidthOverrideLiveAndAcrossRestart(t *testing.T) {
	s := newSvc(t)
	s.env["APP_BANDWIDTH_LIMIT"] = "10M"
	s.start()
	if l, src := bandwidthOf(t, s.status()); l != 10<<20 || src != "config" {
		t.Fatalf("configured: %d %v, want 10 MiB/s from config", l, src)
	}

	const limit = 256 << 10
	code, m := s.do("PUT", "/v1/bandwidth", `{"limit":"256k"}`)
	if code != http.StatusOK || num(m, "bandwidth_limit") != limit || m["bandwidth_source"] != "override" || m["bandwidth_schedule"] != "256k" {
		t.Fatalf("PUT 256k: %d %v", code, m)
	}
	if l, src := bandwidthOf(t, s.status()); l != limit || src != "override" {
		t.Fatalf("status after PUT: %d %v", l, src)
	}

	// The override paces a real upload: N bytes at L take at least about N/L
	// (less the limiter's burst of L/10).
	in, date := s.startSession("bw")
	const size = 768 << 10
	sum := writeFile(t, in, "paced.bin", bytes.Repeat([]byte("bandwidth"), size/9+1)[:size])
	waitBlobs(t, s.container(), map[string]string{date + "/bw/paced.bin": sum}, 60*time.Second)
	var ms int64
	eventually(t, 10*time.Second, "the upload's log line", func() bool {
		var ok bool
		ms, ok = uploadMs(s, "paced.bin")
		return ok
	})
	floor := (size - limit/10) * 1000 / limit
	t.Logf("%d bytes at %d B/s: upload took %d ms (floor %d ms)", size, limit, ms, floor)
	if ms < int64(floor) {
		t.Fatalf("%d bytes uploaded in %d ms at a limit of %d B/s; at least %d ms expected", size, ms, limit, floor)
	}

	// Bad values change nothing.
	for _, body := range []string{`{"limit":"fast"}`, `{"limit":"25:00,1M"}`, `{"limit":"-1M"}`, `{"limit":5}`, `{}`, `{"limit":"1M","x":1}`, `not json`, ``} {
		code, m := s.do("PUT", "/v1/bandwidth", body)
		if code != http.StatusBadRequest || m["error"] == nil {
			t.Errorf("PUT %s: %d %v, want 400 with an error", body, code, m)
		}
	}
	if l, src := bandwidthOf(t, s.status()); l != limit || src != "override" {
		t.Fatalf("status after bad PUTs: %d %v", l, src)
	}

	s.restart()
	if l, src := bandwidthOf(t, s.status()); l != limit || src != "override" {
		t.Fatalf("after restart: %d %v, want the override %d", l, src, limit)
	}

	code, m = s.do("DELETE", "/v1/bandwidth", "")
	if code != http.StatusOK || num(m, "bandwidth_limit") != 10<<20 || m["bandwidth_source"] != "config" {
		t.Fatalf("DELETE: %d %v", code, m)
	}
	s.restart()
	if l, src := bandwidthOf(t, s.status()); l != 10<<20 || src != "config" {
		t.Fatalf("after DELETE and restart: %d %v, want the configured limit", l, src)
	}

	// "off" is an override to no limit; a timetable shows when it changes.
	code, m = s.do("PUT", "/v1/bandwidth", `{"limit":"off"}`)
	if code != http.StatusOK || m["bandwidth_limit"] != nil || m["bandwidth_source"] != "override" {
		t.Fatalf("PUT off: %d %v", code, m)
	}
	code, m = s.do("PUT", "/v1/bandwidth", `{"limit":"00:00,1M 12:00,2M"}`)
	if code != http.StatusOK || m["bandwidth_next_change"] == nil {
		t.Fatalf("PUT a timetable: %d %v", code, m)
	}
	next, err := time.Parse(time.RFC3339, m["bandwidth_next_change"].(string))
	if err != nil || !next.After(time.Now()) || next.After(time.Now().Add(12*time.Hour+time.Minute)) {
		t.Fatalf("next change %v (%v), want within 12 h", m["bandwidth_next_change"], err)
	}
}

// A bad APP_BANDWIDTH_LIMIT stops start-up with a message naming it.
func TestBandwidthConfigErrorNamesVariable(t *testing.T) {
	s := newSvc(t)
	s.env["APP_BANDWIDTH_LIMIT"] = "Mon-25:00,1M"
	s.launch()
	if code := s.waitExit(30 * time.Second); code == 0 {
		t.Fatal("started with a bad APP_BANDWIDTH_LIMIT")
	}
	if !strings.Contains(s.logs.String(), "APP_BANDWIDTH_LIMIT") {
		t.Fatalf("the error does not name APP_BANDWIDTH_LIMIT:\n%s", s.logs.String())
	}
}

// With a token, PUT and DELETE /v1/bandwidth answer 401 without it and
// change nothing; with it they work.
func TestBandwidthTokenRequired(t *testing.T) {
	const token = "bw-token-51c2"
	s := newSvc(t)
	s.env["APP_API_TOKEN"] = token
	s.start()
	for _, auth := range []string{"", "Bearer wrong", token} {
		for _, c := range []struct{ method, body string }{{"PUT", `{"limit":"1M"}`}, {"DELETE", ""}} {
			code, hdr, body := s.raw(c.method, "/v1/bandwidth", c.body, auth)
			var m map[string]any
			if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != "Bearer" || json.Unmarshal(body, &m) != nil || m["error"] == nil {
				t.Errorf("%s /v1/bandwidth with %q: %d %s, want 401", c.method, auth, code, body)
			}
		}
	}
	if l, src := bandwidthOf(t, s.status()); l != 0 || src != nil {
		t.Fatalf("a refused PUT changed the limit: %d %v", l, src)
	}
	if code, _, body := s.raw("PUT", "/v1/bandwidth", `{"limit":"1M"}`, "Bearer "+token); code != http.StatusOK {
		t.Fatalf("PUT with the token: %d %s", code, body)
	}
	if l, src := bandwidthOf(t, s.status()); l != 1<<20 || src != "override" {
		t.Fatalf("after PUT with the token: %d %v", l, src)
	}
	if code, _, body := s.raw("DELETE", "/v1/bandwidth", "", "Bearer "+token); code != http.StatusOK {
		t.Fatalf("DELETE with the token: %d %s", code, body)
	}
	if l, src := bandwidthOf(t, s.status()); l != 0 || src != nil {
		t.Fatalf("after DELETE: %d %v, want none", l, src)
	}
}

// The command line shows, overrides and resets the limit; an unquoted
// timetable (kubectl exec passes it as several arguments) is one value, and
// a bad value exits 1 with the service's message.
func TestBandwidthCLI(t *testing.T) {
	s := newSvc(t)
	s.env["APP_BANDWIDTH_LIMIT"] = "512k"
	s.start()
	env := map[string]string{"APP_HTTP_ADDR": s.addr}
	out, errOut, code := runCLI(t, env, "bandwidth")
	if code != 0 || !strings.Contains(out, "512.0 KiB/s") || !strings.Contains(out, `config "512k"`) {
		t.Fatalf("bandwidth: %d %q %q", code, out, errOut)
	}
	out, errOut, code = runCLI(t, env, "bandwidth", "00:00,1M", "12:00,off")
	if code != 0 || !strings.Contains(out, `override "00:00,1M 12:00,off"`) || !strings.Contains(out, "next change") {
		t.Fatalf("bandwidth 00:00,1M 12:00,off: %d %q %q", code, out, errOut)
	}
	if _, src := bandwidthOf(t, s.status()); src != "override" {
		t.Fatalf("the CLI's override is not in force: %v", src)
	}
	if out, errOut, code = runCLI(t, env, "bandwidth", "fast"); code != 1 || !strings.Contains(out+errOut, "400") {
		t.Fatalf("bandwidth fast: %d %q %q, want exit 1 naming the 400", code, out, errOut)
	}
	out, errOut, code = runCLI(t, env, "bandwidth", "reset")
	if code != 0 || !strings.Contains(out, "512.0 KiB/s") {
		t.Fatalf("bandwidth reset: %d %q %q", code, out, errOut)
	}
}

// limitOnMetrics is every sample of the bandwidth gauge on /metrics.
func limitOnMetrics(t *testing.T, url string) []float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	var out []float64
	for _, m := range fams["bandwidth_limit_bytes_per_second"].GetMetric() {
		out = append(out, m.GetGauge().GetValue())
	}
	return out
}

// The limit in force is on /metrics in bytes per second, from the
// configuration and from an override alike; with no limit the series is
// absent, as /v1/status shows null.
func TestBandwidthLimitMetric(t *testing.T) {
	s := newSvc(t)
	s.env["APP_BANDWIDTH_LIMIT"] = "10M"
	s.env["APP_METRICS_ADDR"] = "127.0.0.1:0"
	s.start()
	url := s.promURL()
	steps := []struct {
		method, body string
		want         []float64
	}{
		{"", "", []float64{10 << 20}},
		{"PUT", `{"limit":"256k"}`, []float64{256 << 10}},
		{"PUT", `{"limit":"off"}`, nil},
		{"DELETE", "", []float64{10 << 20}},
	}
	for _, st := range steps {
		if st.method != "" {
			if code, m := s.do(st.method, "/v1/bandwidth", st.body); code != http.StatusOK {
				t.Fatalf("%s %s: %d %v", st.method, st.body, code, m)
			}
		}
		if got := limitOnMetrics(t, url); len(got) != len(st.want) || len(got) == 1 && got[0] != st.want[0] {
			t.Errorf("after %s %s: bandwidth_limit_bytes_per_second %v, want %v", st.method, st.body, got, st.want)
		}
	}
}
