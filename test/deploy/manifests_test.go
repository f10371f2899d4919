// Package deploy checks the Kubernetes manifests against the real API types
// and against the service itself: its router, its configuration and its ports.
package deploy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/edge/nfs-watcher-uploader/internal/config"
	"github.com/edge/nfs-watcher-uploader/internal/httpapi"
	"github.com/edge/nfs-watcher-uploader/internal/service"
)

// rendered is one kustomization's output, decoded strictly.
type rendered struct {
	pvs          []corev1.PersistentVolume
	pvcs         []corev1.PersistentVolumeClaim
	services     []corev1.Service
	deployments  []appsv1.Deployment
	statefulsets []appsv1.StatefulSet
	accounts     []corev1.ServiceAccount
	policies     []networkingv1.NetworkPolicy
}

func render(t *testing.T, dir string) rendered {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	var r rendered
	for _, res := range m.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var into any
		switch res.GetKind() {
		case "PersistentVolume":
			r.pvs = append(r.pvs, corev1.PersistentVolume{})
			into = &r.pvs[len(r.pvs)-1]
		case "PersistentVolumeClaim":
			r.pvcs = append(r.pvcs, corev1.PersistentVolumeClaim{})
			into = &r.pvcs[len(r.pvcs)-1]
		case "Service":
			r.services = append(r.services, corev1.Service{})
			into = &r.services[len(r.services)-1]
		case "Deployment":
			r.deployments = append(r.deployments, appsv1.Deployment{})
			into = &r.deployments[len(r.deployments)-1]
		case "StatefulSet":
			r.statefulsets = append(r.statefulsets, appsv1.StatefulSet{})
			into = &r.statefulsets[len(r.statefulsets)-1]
		case "ServiceAccount":
			r.accounts = append(r.accounts, corev1.ServiceAccount{})
			into = &r.accounts[len(r.accounts)-1]
		case "NetworkPolicy":
			r.policies = append(r.policies, networkingv1.NetworkPolicy{})
			into = &r.policies[len(r.policies)-1]
		default:
			t.Fatalf("%s: unexpected kind %s", dir, res.GetKind())
		}
		// Strict: a misspelt or misplaced field is an error, not silently dropped.
		if err := yaml.UnmarshalStrict(y, into); err != nil {
			t.Fatalf("%s %s/%s: %v\n%s", dir, res.GetKind(), res.GetName(), err, y)
		}
	}
	return r
}

func TestBaseRendersTheSeedLayout(t *testing.T) {
	r := render(t, "../../k8s")
	if len(r.pvs) != 1 || len(r.pvcs) != 1 || len(r.services) != 1 || len(r.deployments) != 1 || len(r.statefulsets) != 0 {
		t.Fatalf("base resources: %d PV, %d PVC, %d Service, %d Deployment, %d StatefulSet",
			len(r.pvs), len(r.pvcs), len(r.services), len(r.deployments), len(r.statefulsets))
	}
	checkNFS(t, r)
	d := r.deployments[0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1", d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %q: two pods must not share one processing root during a rollout", d.Spec.Strategy.Type)
	}
	env := checkPod(t, "Deployment", d.Spec.Template, r.pvcs[0].Name)
	if env["APP_NFS_PROCESSING_ROOT"] != "/mnt/nfs/.processing" {
		t.Errorf("processing root %q, want the seed's /mnt/nfs/.processing", env["APP_NFS_PROCESSING_ROOT"])
	}
	checkService(t, r.services[0], d.Spec.Template)
	if r.services[0].Spec.ClusterIP == corev1.ClusterIPNone {
		t.Error("base Service should not be headless")
	}
}

func TestMultiSessionOverlayGivesEachReplicaItsOwnRoot(t *testing.T) {
	r := render(t, "../../k8s/overlays/multi-session")
	if len(r.pvs) != 1 || len(r.pvcs) != 1 || len(r.services) != 1 || len(r.deployments) != 0 || len(r.statefulsets) != 1 {
		t.Fatalf("overlay resources: %d PV, %d PVC, %d Service, %d Deployment, %d StatefulSet",
			len(r.pvs), len(r.pvcs), len(r.services), len(r.deployments), len(r.statefulsets))
	}
	checkNFS(t, r)
	s := r.statefulsets[0]
	svc := r.services[0]
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || s.Spec.ServiceName != svc.Name {
		t.Errorf("StatefulSet serviceName %q, Service %q clusterIP %q: want a headless governing Service",
			s.Spec.ServiceName, svc.Name, svc.Spec.ClusterIP)
	}
	if s.Spec.Replicas == nil || *s.Spec.Replicas < 2 {
		t.Errorf("replicas %v, want several", s.Spec.Replicas)
	}
	env := checkPod(t, "StatefulSet", s.Spec.Template, r.pvcs[0].Name)
	if env["APP_NFS_PROCESSING_ROOT"] != "/mnt/nfs/.processing/$(POD_NAME)" {
		t.Errorf("processing root %q, want /mnt/nfs/.processing/$(POD_NAME)", env["APP_NFS_PROCESSING_ROOT"])
	}
	c := s.Spec.Template.Spec.Containers[0]
	podName := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	})
	root := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "APP_NFS_PROCESSING_ROOT" })
	if podName < 0 || podName > root {
		t.Error("POD_NAME must come from metadata.name and be defined before APP_NFS_PROCESSING_ROOT (for $(POD_NAME))")
	}
	checkService(t, svc, s.Spec.Template)
}

func checkNFS(t *testing.T, r rendered) {
	t.Helper()
	pv, pvc := r.pvs[0], r.pvcs[0]
	want := []string{"hard", "nfsvers=4.1", "actimeo=5", "rsize=1048576", "wsize=1048576"}
	if !slices.Equal(pv.Spec.MountOptions, want) {
		t.Errorf("mount options %v, want %v", pv.Spec.MountOptions, want)
	}
	if pv.Spec.NFS == nil || pv.Spec.NFS.Server == "" || pv.Spec.NFS.Path == "" {
		t.Error("PV has no NFS source")
	}
	if !slices.Equal(pv.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}) ||
		!slices.Equal(pvc.Spec.AccessModes, pv.Spec.AccessModes) {
		t.Errorf("access modes PV %v PVC %v, want ReadWriteMany", pv.Spec.AccessModes, pvc.Spec.AccessModes)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Errorf("reclaim policy %q, want Retain", pv.Spec.PersistentVolumeReclaimPolicy)
	}
	if pvc.Spec.VolumeName != pv.Name || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "" {
		t.Errorf("PVC must bind to PV %s statically (volumeName %q)", pv.Name, pvc.Spec.VolumeName)
	}
}

// checkPod checks one pod template and returns its literal env values.
func checkPod(t *testing.T, kind string, tpl corev1.PodTemplateSpec, claim string) map[string]string {
	t.Helper()
	spec := tpl.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers", kind, len(spec.Containers))
	}
	c := spec.Containers[0]

	// Security.
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v", kind, psc)
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: container securityContext %+v", kind, sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() ||
		c.Resources.Limits.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %+v need CPU and memory requests and limits", kind, c.Resources)
	}

	// Volumes.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	nfs := vols[mounts["/mnt/nfs"]]
	if nfs.PersistentVolumeClaim == nil || nfs.PersistentVolumeClaim.ClaimName != claim {
		t.Errorf("%s: /mnt/nfs is not the NFS claim %s", kind, claim)
	}
	staging := vols[mounts["/mnt/staging"]]
	if staging.EmptyDir == nil || staging.EmptyDir.SizeLimit == nil || staging.EmptyDir.SizeLimit.Cmp(resource.MustParse("100Gi")) != 0 {
		t.Errorf("%s: /mnt/staging must be an emptyDir with sizeLimit 100Gi", kind)
	}

	// Environment: every name known; Azure secrets only from a Secret.
	known := map[string]bool{}
	for _, n := range config.Names() {
		known[n] = true
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case strings.HasPrefix(e.Name, config.Prefix):
			if !known[e.Name] {
				t.Errorf("%s: env %s is not a configuration variable", kind, e.Name)
			}
		case strings.HasPrefix(e.Name, "OTEL_"):
			if !slices.Contains(otelVars, e.Name) {
				t.Errorf("%s: env %s is not an OTEL_* variable the service documents", kind, e.Name)
			}
		case e.Name == "POD_NAME" || e.Name == "POD_NAMESPACE":
		default:
			t.Errorf("%s: unexpected env %s", kind, e.Name)
		}
		if e.ValueFrom != nil {
			if isSecret(e.Name) {
				if e.ValueFrom.SecretKeyRef == nil {
					t.Errorf("%s: %s must come from a Secret", kind, e.Name)
				}
			}
			continue
		}
		if isSecret(e.Name) {
			t.Errorf("%s: %s is inline; secrets come from a Secret", kind, e.Name)
		}
		env[e.Name] = e.Value
	}
	for _, n := range config.Names() {
		if _, ok := env[n]; !ok && !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == n }) {
			t.Errorf("%s: %s is not set (every APP_* variable is listed)", kind, n)
		}
	}
	// The literal values alone (Secrets absent: workload identity) must be a
	// valid configuration: every variable without a default is set.
	lit := map[string]string{}
	for k, v := range env {
		if strings.HasPrefix(k, config.Prefix) && v != "" {
			lit[k] = strings.ReplaceAll(v, "$(POD_NAME)", "nfs-watcher-uploader-0")
		}
	}
	cfg, err := config.Load(lit)
	if err != nil {
		t.Errorf("%s: its environment is not a valid configuration: %v", kind, err)
	}
	// The staging budget must keep staging under the emptyDir's sizeLimit,
	// with room for the filesystem's own blocks: an emptyDir past it gets
	// the pod evicted.
	if limit := staging.EmptyDir.SizeLimit; limit != nil && float64(cfg.LocalStagingMaxBytes) > 0.9*float64(limit.Value()) {
		t.Errorf("%s: APP_LOCAL_STAGING_MAX_BYTES %d is not safely under the staging sizeLimit %s", kind, cfg.LocalStagingMaxBytes, limit)
	}

	// Probes hit real routes on the API port.
	router := httpapi.Routes(stubController{}, nil)
	for name, want := range map[string]struct {
		p             *corev1.Probe
		path          string
		period, fails int32
	}{
		"liveness":  {c.LivenessProbe, "/healthz", 10, 3},
		"readiness": {c.ReadinessProbe, "/readyz", 0, 0},
		"startup":   {c.StartupProbe, "/healthz", 5, 24},
	} {
		p := want.p
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", kind, name)
			continue
		}
		if p.HTTPGet.Path != want.path || want.period != 0 && (p.PeriodSeconds != want.period || p.FailureThreshold != want.fails) {
			t.Errorf("%s: %s probe %s every %ds x %d, want %s every %ds x %d", kind, name,
				p.HTTPGet.Path, p.PeriodSeconds, p.FailureThreshold, want.path, want.period, want.fails)
		}
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p.HTTPGet.Path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s: %s probe path %s answers %d on the service's router", kind, name, p.HTTPGet.Path, rec.Code)
		}
		if err != nil {
			continue // the ports cannot be checked against a configuration that does not load
		}
		if port := containerPort(c, p.HTTPGet.Port.String()); port != portOf(t, cfg.HTTPAddr) {
			t.Errorf("%s: %s probe port %s = %d, service listens on %s", kind, name, p.HTTPGet.Port.String(), port, cfg.HTTPAddr)
		}
	}
	if cfg.MetricsAddr != "" {
		if containerPort(c, "metrics") != portOf(t, cfg.MetricsAddr) {
			t.Errorf("%s: metrics port does not match APP_METRICS_ADDR %s", kind, cfg.MetricsAddr)
		}
		if tpl.Annotations["prometheus.io/port"] != portString(t, cfg.MetricsAddr) || tpl.Annotations["prometheus.io/scrape"] != "true" {
			t.Errorf("%s: prometheus.io annotations %v do not match APP_METRICS_ADDR", kind, tpl.Annotations)
		}
	}
	return env
}

// isSecret names the variables whose values must come from a Secret.
func isSecret(name string) bool {
	return strings.Contains(name, "KEY") || strings.Contains(name, "CONNECTION_STRING") || strings.HasSuffix(name, "_TOKEN")
}

// otelVars are the standard variables the README documents.
var otelVars = []string{
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
	"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT",
	"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_METRIC_EXPORT_INTERVAL",
	"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
}

func checkService(t *testing.T, svc corev1.Service, tpl corev1.PodTemplateSpec) {
	t.Helper()
	for k, v := range svc.Spec.Selector {
		if tpl.Labels[k] != v {
			t.Errorf("Service %s selector %s=%s does not match the pods (%v)", svc.Name, k, v, tpl.Labels)
		}
	}
	c := tpl.Spec.Containers[0]
	for _, p := range svc.Spec.Ports {
		if containerPort(c, p.TargetPort.String()) == 0 {
			t.Errorf("Service %s port %s targets %s, which the container does not expose", svc.Name, p.Name, p.TargetPort.String())
		}
	}
}

func containerPort(c corev1.Container, nameOrNumber string) int32 {
	for _, p := range c.Ports {
		if p.Name == nameOrNumber || strconv.Itoa(int(p.ContainerPort)) == nameOrNumber {
			return p.ContainerPort
		}
	}
	return 0
}

func portString(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	n, err := strconv.Atoi(portString(t, addr))
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return int32(n)
}

type stubController struct{}

func (stubController) Ready() bool                           { return true }
func (stubController) Start(string) (service.Started, error) { return service.Started{}, nil }
func (stubController) Stop() (string, bool, error)           { return "", false, nil }
func (stubController) Status() service.Status                { return service.Status{} }
