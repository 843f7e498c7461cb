package install_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/install"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/tenancy"
	"github.com/tenantguard/tenantguard/internal/version"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

const (
	chartDir = "../../charts/tenantguard"
	image    = "registry.example.com/tenantguard:test"
)

type values = map[string]any

// combinations are the value sets every test renders: the defaults, each
// optional part, and every failure policy.
var combinations = []struct {
	name   string
	values values
}{
	{"defaults", nil},
	{"cert-manager", values{"certManager": values{"enabled": true}}},
	{"cert-manager with a cluster issuer", values{"certManager": values{"enabled": true,
		"issuerRef": values{"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}}}},
	{"registry gateway", values{"registry": values{"enabled": true, "upstream": "https://myacr.azurecr.io",
		"realm": "https://registry.example.com/token", "service": "registry.example.com",
		"upstreamUsername": "tenantguard-gw", "upstreamPasswordSecret": "acr", "robotsSecret": "robots",
		"signingKeysSecret": "signing-keys", "tlsSecret": "registry-tls", "serviceAccountAudiences": []any{"tenantguard-registry"}}}},
	{"registry gateway, one replica, upstream token", values{"registry": values{"enabled": true, "replicas": 1,
		"upstream": "https://myacr.azurecr.io", "upstreamTokenSecret": "acr-token"}}},
	{"network policy and service monitor", values{
		"networkPolicy":  values{"enabled": true, "metricsFrom": []any{values{"namespaceSelector": values{"matchLabels": values{"kubernetes.io/metadata.name": "monitoring"}}}}},
		"serviceMonitor": values{"enabled": true, "labels": values{"release": "prometheus"}}}},
	{"network policy for an API server subnet", values{"networkPolicy": values{"enabled": true,
		"from": []any{values{"ipBlock": values{"cidr": "10.225.0.0/28"}}}}}},
	{"no flow control, no tenant controller", values{"flowControl": values{"enabled": false}, "tenantController": values{"enabled": false}}},
	{"tenants Ignore", values{"webhooks": values{"failurePolicy": values{"tenants": "Ignore"}}}},
	{"namespaces Ignore", values{"webhooks": values{"failurePolicy": values{"namespaces": "Ignore"}}}},
	{"tenant objects Ignore", values{"webhooks": values{"failurePolicy": values{"tenantObjects": "Ignore"}}}},
	{"non-tenant Ignore", values{"config": values{"nonTenantFailurePolicy": "Ignore"}}},
	{"all Ignore", values{"config": values{"nonTenantFailurePolicy": "Ignore"},
		"webhooks": values{"failurePolicy": values{"tenants": "Ignore", "namespaces": "Ignore", "tenantObjects": "Ignore"}}}},
}

func render(t *testing.T, v values) []client.Object {
	t.Helper()
	objs, err := install.Render(install.Options{Config: config.Default(), Image: image, Replicas: 2, Values: v})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestChartLints runs Helm's own lint, as `helm lint --strict` would, on
// the chart directory for every combination.
func TestChartLints(t *testing.T) {
	kube, err := common.ParseKubeVersion(version.Kubernetes)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range combinations {
		t.Run(c.name, func(t *testing.T) {
			v := values{"image": values{"repository": "registry.example.com/tenantguard"}}
			for k, val := range c.values {
				v[k] = val
			}
			result := lint.RunAll(chartDir, v, "tenantguard-system", lint.WithKubeVersion(kube))
			for _, m := range result.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
	// The lint does check: a failure policy the schema does not allow.
	bad := lint.RunAll(chartDir, values{"image": values{"repository": "x"}, "webhooks": values{"failurePolicy": values{"tenants": "Sometimes"}}},
		"tenantguard-system", lint.WithKubeVersion(kube))
	if bad.HighestSeverity < support.ErrorSev {
		t.Errorf("lint accepts failurePolicy Sometimes: %v", bad.Messages)
	}
}

// TestChartCRDsAreConfigCRDs: config/crd (generated from api/) is the one
// source; the chart's crds/ are copies (go generate ./internal/install).
func TestChartCRDsAreConfigCRDs(t *testing.T) {
	want, _ := filepath.Glob("../../config/crd/*.yaml")
	got, _ := filepath.Glob(chartDir + "/crds/*.yaml")
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("config/crd has %v, the chart's crds/ %v", want, got)
	}
	for _, w := range want {
		a, err := os.ReadFile(w)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(chartDir, "crds", filepath.Base(w)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("charts/tenantguard/crds/%s differs from %s: run go generate ./internal/install", filepath.Base(w), w)
		}
	}
}

// TestNoPrivateKeyInAnyRendering: the guard or cert-manager makes the
// key in the cluster; it never passes through the output.
func TestNoPrivateKeyInAnyRendering(t *testing.T) {
	for _, c := range combinations {
		var buf bytes.Buffer
		if err := install.WriteYAML(&buf, render(t, c.values)); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "PRIVATE KEY") {
			t.Errorf("%s: the output holds a private key", c.name)
		}
		for _, o := range render(t, c.values) {
			if o.GetObjectKind().GroupVersionKind().Kind == "Secret" {
				t.Errorf("%s: the output holds Secret %s", c.name, o.GetName())
			}
		}
	}
}

// TestChartWebhooksMatchGo keeps the chart's webhook configuration and
// webhook.Configuration (used by dev and the tests) equal, for the
// defaults, a configuration of its own and every failure policy, rendered
// the way helm would from values alone.
func TestChartWebhooksMatchGo(t *testing.T) {
	cases := []struct {
		name, namespace, sa string
		config              string // the GuardConfig fields given as values
		policies            values
	}{
		{name: "defaults", namespace: "tenantguard-system", sa: "tenantguard"},
		{name: "own configuration", namespace: "guard", sa: "guard-sa", config: `
excludedNamespaces: [kube-system, ops]
adminGroups: [platform-admins, 'odd "group"']
nonTenantFailurePolicy: Ignore
`},
		{name: "no excluded namespaces", namespace: "guard", sa: "tenantguard", config: "excludedNamespaces: []\n"},
		{name: "every policy Ignore", namespace: "tenantguard-system", sa: "tenantguard", config: "nonTenantFailurePolicy: Ignore\n",
			policies: values{"tenants": "Ignore", "namespaces": "Ignore", "tenantObjects": "Ignore"}},
		{name: "tenants Ignore", namespace: "tenantguard-system", sa: "tenantguard", policies: values{"tenants": "Ignore"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfgValues := values{}
			if err := yaml.Unmarshal([]byte(c.config), &cfgValues); err != nil {
				t.Fatal(err)
			}
			v := values{"image": values{"repository": "x"}, "serviceAccount": values{"name": c.sa}, "config": cfgValues}
			if c.policies != nil {
				v["webhooks"] = values{"failurePolicy": c.policies}
			}
			objs, err := install.RenderValues(c.namespace, v)
			if err != nil {
				t.Fatal(err)
			}
			chart := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			convert(t, find(t, objs, "ValidatingWebhookConfiguration", "tenantguard"), chart)

			cfg, err := config.Parse([]byte(c.config + "\nguardNamespace: " + c.namespace + "\nguardServiceAccount: " + c.sa + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			policy := func(k string) admissionregistrationv1.FailurePolicyType {
				p, _ := c.policies[k].(string)
				return admissionregistrationv1.FailurePolicyType(p)
			}
			goVWC := webhook.Configuration(cfg, webhook.ConfigurationOptions{
				TenantsFailurePolicy: policy("tenants"), NamespacesFailurePolicy: policy("namespaces"), TenantObjectsFailurePolicy: policy("tenantObjects"),
			})
			for i := range chart.Webhooks {
				svc := chart.Webhooks[i].ClientConfig.Service
				if svc == nil || svc.Namespace != c.namespace || svc.Name != "tenantguard" || *svc.Path != webhook.Path || *svc.Port != 443 {
					t.Errorf("webhook %s calls %+v", chart.Webhooks[i].Name, chart.Webhooks[i].ClientConfig)
				}
				chart.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{}
			}
			for i := range goVWC.Webhooks {
				goVWC.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{}
			}
			if !reflect.DeepEqual(chart.Webhooks, goVWC.Webhooks) {
				a, _ := yaml.Marshal(chart.Webhooks)
				b, _ := yaml.Marshal(goVWC.Webhooks)
				t.Errorf("the chart's webhooks:\n%s\nwebhook.Configuration's:\n%s", a, b)
			}

			// The namespace creation webhook, of the same name.
			chartM := &admissionregistrationv1.MutatingWebhookConfiguration{}
			convert(t, find(t, objs, "MutatingWebhookConfiguration", "tenantguard"), chartM)
			goMWC := webhook.MutatingConfiguration(cfg, webhook.ConfigurationOptions{})
			for i := range chartM.Webhooks {
				svc := chartM.Webhooks[i].ClientConfig.Service
				if svc == nil || svc.Namespace != c.namespace || svc.Name != "tenantguard" || *svc.Path != webhook.MutatePath || *svc.Port != 443 {
					t.Errorf("webhook %s calls %+v", chartM.Webhooks[i].Name, chartM.Webhooks[i].ClientConfig)
				}
				chartM.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{}
			}
			for i := range goMWC.Webhooks {
				goMWC.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{}
			}
			if !reflect.DeepEqual(chartM.Webhooks, goMWC.Webhooks) {
				a, _ := yaml.Marshal(chartM.Webhooks)
				b, _ := yaml.Marshal(goMWC.Webhooks)
				t.Errorf("the chart's mutating webhooks:\n%s\nwebhook.MutatingConfiguration's:\n%s", a, b)
			}
			if n := len(goMWC.Webhooks); n != 1 || *goMWC.Webhooks[0].FailurePolicy != admissionregistrationv1.Fail {
				t.Errorf("the namespace creation webhook must be one, failing closed whatever the values: %+v", goMWC.Webhooks)
			}
			for _, m := range []map[string]string{chart.Labels, chart.Annotations, goVWC.Labels, goVWC.Annotations,
				chartM.Labels, chartM.Annotations, goMWC.Labels, goMWC.Annotations} {
				if m[webhook.AKSEnforcerOptOut] != "true" {
					t.Errorf("%s not set in %v", webhook.AKSEnforcerOptOut, m)
				}
			}
		})
	}
}

// TestRenderSetsWhatTheValuesSay checks the parts of the rendering that
// the API server does not: the guard's certificate handling, its pod's
// hardening and availability, and least-privilege RBAC.
func TestRenderSetsWhatTheValuesSay(t *testing.T) {
	guardPod := func(t *testing.T, objs []client.Object) (*appsv1.Deployment, corev1.Container) {
		t.Helper()
		d := &appsv1.Deployment{}
		convert(t, find(t, objs, "Deployment", "tenantguard"), d)
		return d, d.Spec.Template.Spec.Containers[0]
	}
	t.Run("defaults: the guard keeps its own certificate", func(t *testing.T) {
		objs := render(t, nil)
		d, c := guardPod(t, objs)
		args := strings.Join(c.Args, " ")
		for _, want := range []string{"--cert-dir=/etc/tenantguard/tls", "--cert-secret=tenantguard-webhook-tls", "--webhook-configurations=tenantguard"} {
			if !strings.Contains(args, want) {
				t.Errorf("serve args %q lack %s", args, want)
			}
		}
		if v := d.Spec.Template.Spec.Volumes[0]; v.Name != "tls" || v.EmptyDir == nil {
			t.Errorf("the tls volume is not a writable emptyDir: %+v", v)
		}
		if m := c.VolumeMounts[0]; m.MountPath != "/etc/tenantguard/tls" || m.ReadOnly {
			t.Errorf("tls mount: %+v", m)
		}
		if *d.Spec.Replicas != 2 || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 || len(d.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
			t.Errorf("not highly available: replicas %d, strategy %+v, spread %v", *d.Spec.Replicas, d.Spec.Strategy, d.Spec.Template.Spec.TopologySpreadConstraints)
		}
		pod, sc := d.Spec.Template.Spec.SecurityContext, c.SecurityContext
		if !*pod.RunAsNonRoot || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
			!*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("pod not hardened: %+v %+v", pod, sc)
		}
		if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("probes or resources missing: %+v %+v %+v", c.ReadinessProbe, c.LivenessProbe, c.Resources)
		}
		find(t, objs, "PodDisruptionBudget", "tenantguard")

		role := &rbacv1.Role{}
		convert(t, find(t, objs, "Role", "tenantguard"), role)
		cr := &rbacv1.ClusterRole{}
		convert(t, find(t, objs, "ClusterRole", "tenantguard"), cr)
		for _, r := range append(role.Rules, cr.Rules...) {
			if slices.Contains(r.Resources, "secrets") && !slices.Contains(r.Verbs, "create") && !reflect.DeepEqual(r.ResourceNames, []string{"tenantguard-webhook-tls"}) {
				t.Errorf("secrets rule not limited to the guard's Secret: %+v", r)
			}
			if slices.Contains(r.Resources, "validatingwebhookconfigurations") && !reflect.DeepEqual(r.ResourceNames, []string{"tenantguard"}) {
				t.Errorf("webhook configuration rule not limited to the guard's own: %+v", r)
			}
			if slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") {
				t.Errorf("wildcard rule: %+v", r)
			}
		}
	})
	t.Run("cert-manager issues the certificate", func(t *testing.T) {
		objs := render(t, values{"certManager": values{"enabled": true}})
		d, c := guardPod(t, objs)
		if strings.Contains(strings.Join(c.Args, " "), "--cert-secret") {
			t.Errorf("with cert-manager the guard must not manage the certificate: %v", c.Args)
		}
		if v := d.Spec.Template.Spec.Volumes[0]; v.Secret == nil || v.Secret.SecretName != "tenantguard-webhook-tls" {
			t.Errorf("tls volume: %+v", v)
		}
		cert := find(t, objs, "Certificate", "tenantguard-webhook")
		if s, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName"); s != "tenantguard-webhook-tls" {
			t.Errorf("Certificate writes %q", s)
		}
		find(t, objs, "Issuer", "tenantguard-selfsigned")
		for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
			wh := find(t, objs, kind, "tenantguard")
			if got := wh.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != "tenantguard-system/tenantguard-webhook" {
				t.Errorf("%s: inject-ca-from %q", kind, got)
			}
		}
		for _, o := range objs {
			if o.GetName() == tenancy.TenantAdminRole || o.GetName() == tenancy.NamespaceCreatorRole {
				continue // the tenants' roles, not the guard's
			}
			if o.GetObjectKind().GroupVersionKind().Kind == "Role" || o.GetObjectKind().GroupVersionKind().Kind == "ClusterRole" {
				var buf bytes.Buffer
				_ = install.WriteYAML(&buf, []client.Object{o})
				if strings.Contains(buf.String(), "secrets") || strings.Contains(buf.String(), "webhookconfigurations") {
					t.Errorf("with cert-manager, %s %s still grants certificate rights", o.GetObjectKind().GroupVersionKind().Kind, o.GetName())
				}
			}
		}
	})
	t.Run("an image by digest", func(t *testing.T) {
		digest := "sha256:" + strings.Repeat("ab", 32)
		objs, err := install.Render(install.Options{Config: config.Default(), Image: "myacr.azurecr.io/tenantguard@" + digest, Replicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		d, c := guardPod(t, objs)
		if c.Image != "myacr.azurecr.io/tenantguard@"+digest || *d.Spec.Replicas != 3 {
			t.Errorf("image %q, replicas %d", c.Image, *d.Spec.Replicas)
		}
	})
}

func TestRenderRefusesBadInput(t *testing.T) {
	cases := []struct {
		name string
		opts install.Options
		want string
	}{
		{"no image", install.Options{Config: config.Default(), Replicas: 2}, "--image"},
		{"zero replicas", install.Options{Config: config.Default(), Image: image}, "replicas"},
		{"bad image", install.Options{Config: config.Default(), Image: "registry.example.com/TenantGuard:v1", Replicas: 2}, "want registry/repository"},
		{"bad failure policy", install.Options{Config: config.Default(), Image: image, Replicas: 2,
			Values: values{"webhooks": values{"failurePolicy": values{"tenants": "Sometimes"}}}}, "failurePolicy"},
		{"typo in a value", install.Options{Config: config.Default(), Image: image, Replicas: 2, Values: values{"replica": 3}}, "replica"},
		{"registry without upstream", install.Options{Config: config.Default(), Image: image, Replicas: 2,
			Values: values{"registry": values{"enabled": true, "signingKeysSecret": "k"}}}, "registry.upstream is required"},
		{"registry replicas without shared keys", install.Options{Config: config.Default(), Image: image, Replicas: 2,
			Values: values{"registry": values{"enabled": true, "upstream": "https://x"}}}, "signingKeysSecret is required"},
		{"network policy with no peers", install.Options{Config: config.Default(), Image: image, Replicas: 2,
			Values: values{"networkPolicy": values{"enabled": true, "from": []any{}}}}, "networkPolicy.from is empty"},
	}
	for _, c := range cases {
		if _, err := install.Render(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error about %q", c.name, err, c.want)
		}
	}
	// A chart user's configuration that names another namespace.
	_, err := install.RenderValues("tenantguard-system", values{"image": values{"repository": "x"}, "config": values{"guardNamespace": "elsewhere"}})
	if err == nil || !strings.Contains(err.Error(), "config.guardNamespace") {
		t.Errorf("a guardNamespace other than the release namespace: %v", err)
	}
}

// TestEveryCombinationIsAcceptedByTheAPIServer applies each rendering to a
// real API server with a server-side dry run. cert-manager's and the
// Prometheus Operator's CRDs come from small copies in testdata.
func TestEveryCombinationIsAcceptedByTheAPIServer(t *testing.T) {
	ctx := context.Background()
	env := devenvtest.Start(t, devenv.Options{})
	admin, err := client.New(env.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	// Prerequisites, created for real: the third-party CRDs, the chart's
	// CRDs and the namespace (a dry-run namespace holds nothing).
	var crds []*unstructured.Unstructured
	for _, f := range []string{"testdata/crds/cert-manager.yaml", "testdata/crds/servicemonitor.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			crds = append(crds, u)
		}
	}
	for _, o := range render(t, nil) {
		if k := o.GetObjectKind().GroupVersionKind().Kind; k == "CustomResourceDefinition" || k == "Namespace" {
			crds = append(crds, o.(*unstructured.Unstructured))
		}
	}
	for _, u := range crds {
		apply(t, admin, u)
		if u.GetKind() == "CustomResourceDefinition" {
			waitEstablished(t, admin, u.GetName())
		}
	}
	for _, c := range combinations {
		t.Run(c.name, func(t *testing.T) {
			for _, o := range render(t, c.values) {
				u := o.(*unstructured.Unstructured)
				if err := dryRun(ctx, admin, u); err != nil {
					t.Errorf("%s %s: %v", u.GetKind(), u.GetName(), err)
				}
			}
		})
	}
	// The dry run does check: a misspelt field and a bad value are refused.
	d := find(t, render(t, nil), "Deployment", "tenantguard")
	_ = unstructured.SetNestedField(d.Object, int64(2), "spec", "replicaz")
	if err := dryRun(ctx, admin, d); err == nil {
		t.Error("the API server accepts spec.replicaz")
	}
	vwc := find(t, render(t, nil), "ValidatingWebhookConfiguration", "tenantguard")
	hooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	hooks[0].(map[string]any)["failurePolicy"] = "Sometimes"
	_ = unstructured.SetNestedSlice(vwc.Object, hooks, "webhooks")
	if err := dryRun(ctx, admin, vwc); err == nil {
		t.Error("the API server accepts failurePolicy Sometimes")
	}
}

func dryRun(ctx context.Context, c client.Client, u *unstructured.Unstructured) error {
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("tenantguard-install-test"), client.ForceOwnership, client.DryRunAll)
}

func apply(t *testing.T, c client.Client, u *unstructured.Unstructured) {
	t.Helper()
	if err := c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.FieldOwner("tenantguard-install-test"), client.ForceOwnership); err != nil {
		t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

func find(t *testing.T, objs []client.Object, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetObjectKind().GroupVersionKind().Kind == kind && o.GetName() == name {
			return o.(*unstructured.Unstructured)
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

func convert(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}
