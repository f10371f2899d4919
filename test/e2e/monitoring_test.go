package e2e

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
)

// scrapeNames runs the service with Prometheus metrics on, makes every
// metric the monitoring pack uses appear (an upload, a permanent failure
// that is then retried, a bandwidth limit far above the link), and returns
// the series names /metrics exports.
func scrapeNames(t *testing.T) map[string]bool {
	t.Helper()
	s, p := newProxiedSvc(t)
	s.env["APP_METRICS_ADDR"] = "127.0.0.1:0"
	s.env["APP_BANDWIDTH_LIMIT"] = "1G"
	s.start()
	var puts atomic.Int32
	p.SetRule(func(r *http.Request) faultproxy.Action {
		if r.Method == http.MethodPut && puts.Add(1) == 1 {
			return faultproxy.Fail403
		}
		return faultproxy.Pass
	})
	in, date := s.startSession("mon")
	sum := writeFile(t, in, "m.bin", []byte("monitoring"))
	waitBlobs(t, s.container(), map[string]string{date + "/mon/m.bin": sum}, 30*time.Second)

	url := s.promURL()
	names := map[string]bool{}
	eventually(t, 10*time.Second, "processed and failed files on /metrics", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		tp := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := tp.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		names = map[string]bool{}
		for name, f := range fams {
			names[name] = true
			if f.GetType() == dto.MetricType_HISTOGRAM {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					names[name+suffix] = true
				}
			}
		}
		return names["files_processed_total"] && names["files_failed_total"]
	})
	return names
}

// metricNames parses a PromQL expression and returns the metric names it reads.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatalf("%s: %q does not parse: %v", where, expr, err)
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
			out = append(out, vs.Name)
		}
		return nil
	})
	if len(out) == 0 {
		t.Errorf("%s: %q reads no metric", where, expr)
	}
	return out
}

// generated are series Prometheus itself makes for every scrape target.
var generated = map[string]bool{"up": true}

// The monitoring pack parses with Prometheus' own rule and PromQL parsers,
// and every metric its alerts and dashboard read is one the running
// service exports.
func TestMonitoringPackUsesExportedMetrics(t *testing.T) {
	exported := scrapeNames(t)
	used := map[string][]string{} // metric -> where

	// Alert rules: the PrometheusRule's spec is a Prometheus rule file.
	b, err := os.ReadFile("../../k8s/monitoring/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(b, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" || pr.APIVersion != "monitoring.coreos.com/v1" {
		t.Fatalf("kind %s %s, want monitoring.coreos.com/v1 PrometheusRule", pr.APIVersion, pr.Kind)
	}
	spec, err := yaml.JSONToYAML(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(spec, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("alert rules: %v", errs)
	}
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" || r.Labels["severity"] == "" {
				t.Errorf("alert %s needs a severity label and summary and description annotations", r.Alert)
			}
			for _, m := range metricNames(t, "alert "+r.Alert, r.Expr) {
				used[m] = append(used[m], "alert "+r.Alert)
			}
		}
	}
	for _, a := range []string{"NfsWatcherUploaderStalled", "NfsWatcherUploaderOldestFileTooOld", "NfsWatcherUploaderPermanentFailures", "NfsWatcherUploaderDown"} {
		if !alerts[a] {
			t.Errorf("alert %s is missing", a)
		}
	}

	// Dashboard: every panel's queries.
	b, err = os.ReadFile("../../k8s/monitoring/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	// Grafana's variables, as Grafana would expand them.
	expand := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$instance", ".*", "$job", "nfs-watcher-uploader")
	panelUses := map[string]bool{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				continue
			}
			for _, m := range metricNames(t, "panel "+p.Title, expand.Replace(tg.Expr)) {
				used[m] = append(used[m], "panel "+p.Title)
				panelUses[m] = true
			}
		}
	}
	// The panels the operations guide describes.
	for _, m := range []string{"bytes_uploaded_total", "files_processed_total", "queue_depth", "files_in_flight", "files_retrying",
		"files_oldest_waiting_age_seconds", "files_failed_total", "upload_duration_seconds_bucket", "bandwidth_limit_bytes_per_second"} {
		if !panelUses[m] {
			t.Errorf("no dashboard panel reads %s", m)
		}
	}

	for m, where := range used {
		if !exported[m] && !generated[m] {
			t.Errorf("%s (used by %s) is not exported by the service", m, strings.Join(where, ", "))
		}
	}
	if t.Failed() {
		var list []string
		for n := range exported {
			list = append(list, n)
		}
		sort.Strings(list)
		t.Logf("the service exports: %s", strings.Join(list, " "))
	}
}

// kubectl apply -k k8s/monitoring renders the rules, the PodMonitor and
// the dashboard ConfigMap Grafana's sidecar picks up.
func TestMonitoringKustomization(t *testing.T) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "../../k8s/monitoring")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, r := range m.Resources() {
		kinds[r.GetKind()] = true
		if r.GetKind() == "ConfigMap" {
			data := r.GetDataMap()
			if !json.Valid([]byte(data["dashboard.json"])) || r.GetLabels()["grafana_dashboard"] != "1" {
				t.Errorf("dashboard ConfigMap %s: labels %v, dashboard.json valid %v", r.GetName(), r.GetLabels(), json.Valid([]byte(data["dashboard.json"])))
			}
		}
	}
	for _, k := range []string{"PrometheusRule", "PodMonitor", "ConfigMap"} {
		if !kinds[k] {
			t.Errorf("k8s/monitoring renders no %s", k)
		}
	}
}
