package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Workload identity: the pod runs as a ServiceAccount carrying the client-id
// annotation, labelled for the webhook; the base stays complete.
func TestWorkloadIdentityOverlay(t *testing.T) {
	r := render(t, "../../k8s/overlays/workload-identity")
	if len(r.deployments) != 1 || len(r.accounts) != 1 || len(r.pvcs) != 1 || len(r.services) != 1 {
		t.Fatalf("overlay resources: %d Deployment, %d ServiceAccount, %d PVC, %d Service",
			len(r.deployments), len(r.accounts), len(r.pvcs), len(r.services))
	}
	d := r.deployments[0]
	checkIdentity(t, r.accounts[0], d.Spec.Template, d.Spec.Selector)
	checkPod(t, "Deployment", d.Spec.Template, r.pvcs[0].Name)
}

func checkIdentity(t *testing.T, sa corev1.ServiceAccount, tpl corev1.PodTemplateSpec, sel *metav1.LabelSelector) {
	t.Helper()
	if sa.Annotations["azure.workload.identity/client-id"] == "" {
		t.Error("ServiceAccount lacks azure.workload.identity/client-id")
	}
	if tpl.Spec.ServiceAccountName != sa.Name {
		t.Errorf("pod runs as %q, ServiceAccount is %q", tpl.Spec.ServiceAccountName, sa.Name)
	}
	if tpl.Labels["azure.workload.identity/use"] != "true" {
		t.Errorf("pod labels %v lack azure.workload.identity/use=true", tpl.Labels)
	}
	// The added label must not break the selector.
	if !labels.SelectorFromSet(sel.MatchLabels).Matches(labels.Set(tpl.Labels)) {
		t.Error("selector no longer matches the pod")
	}
}

// The components combine: multi-session's StatefulSet with workload
// identity and the NetworkPolicy, in a kustomization an operator writes.
func TestComponentsCombineWithMultiSession(t *testing.T) {
	k8s, err := filepath.Abs("../../k8s")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Kustomize takes no absolute roots: refer to the tree from dir.
	if k8s, err = filepath.Rel(dir, k8s); err != nil {
		t.Fatal(err)
	}
	kust := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %[1]s/overlays/multi-session
components:
  - %[1]s/components/workload-identity
  - %[1]s/components/network-policy
`, k8s)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	r := render(t, dir)
	if len(r.statefulsets) != 1 || len(r.deployments) != 0 || len(r.accounts) != 1 || len(r.policies) != 1 || len(r.pvcs) != 1 {
		t.Fatalf("resources: %d StatefulSet, %d Deployment, %d ServiceAccount, %d NetworkPolicy, %d PVC",
			len(r.statefulsets), len(r.deployments), len(r.accounts), len(r.policies), len(r.pvcs))
	}
	s := r.statefulsets[0]
	checkIdentity(t, r.accounts[0], s.Spec.Template, s.Spec.Selector)
	checkPolicy(t, r.policies[0], s.Spec.Template)
	checkPod(t, "StatefulSet", s.Spec.Template, r.pvcs[0].Name)
}

// NetworkPolicy: selects the pod; ingress only to its API and metrics ports,
// egress only to DNS (53) and HTTPS (443).
func TestNetworkPolicyOverlay(t *testing.T) {
	r := render(t, "../../k8s/overlays/network-policy")
	if len(r.policies) != 1 || len(r.deployments) != 1 {
		t.Fatalf("overlay resources: %d NetworkPolicy, %d Deployment", len(r.policies), len(r.deployments))
	}
	checkPolicy(t, r.policies[0], r.deployments[0].Spec.Template)
}

func checkPolicy(t *testing.T, np networkingv1.NetworkPolicy, tpl corev1.PodTemplateSpec) {
	t.Helper()
	sel := labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels)
	if len(np.Spec.PodSelector.MatchLabels) == 0 || !sel.Matches(labels.Set(tpl.Labels)) {
		t.Fatalf("podSelector %v does not select the pod %v", np.Spec.PodSelector, tpl.Labels)
	}
	types := map[networkingv1.PolicyType]bool{}
	for _, pt := range np.Spec.PolicyTypes {
		types[pt] = true
	}
	if !types[networkingv1.PolicyTypeIngress] || !types[networkingv1.PolicyTypeEgress] {
		t.Fatalf("policyTypes %v: both directions must be restricted", np.Spec.PolicyTypes)
	}
	c := tpl.Spec.Containers[0]
	ingress := map[int32]bool{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			t.Fatal("an ingress rule without ports opens every port")
		}
		for _, p := range rule.Ports {
			if p.Port == nil || p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP {
				t.Fatalf("ingress port %+v", p)
			}
			n := containerPort(c, p.Port.String())
			if n == 0 {
				t.Fatalf("ingress port %s is not a container port", p.Port.String())
			}
			ingress[n] = true
		}
	}
	if len(ingress) != 2 || !ingress[containerPort(c, "http")] || !ingress[containerPort(c, "metrics")] {
		t.Errorf("ingress ports %v, want exactly http and metrics", ingress)
	}
	egress := map[string]bool{}
	for _, rule := range np.Spec.Egress {
		if len(rule.Ports) == 0 {
			t.Fatal("an egress rule without ports allows every port")
		}
		for _, p := range rule.Ports {
			if p.Port == nil || p.Protocol == nil {
				t.Fatalf("egress port %+v", p)
			}
			egress[string(*p.Protocol)+"/"+p.Port.String()] = true
		}
	}
	want := map[string]bool{"UDP/53": true, "TCP/53": true, "TCP/443": true}
	if len(egress) != len(want) {
		t.Errorf("egress %v, want %v", egress, want)
	}
	for k := range want {
		if !egress[k] {
			t.Errorf("egress lacks %s", k)
		}
	}
}
