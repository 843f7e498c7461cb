package check_test

import (
	"strings"
	"testing"

	"github.com/tenantguard/tenantguard/internal/check"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/manifest"
	"github.com/tenantguard/tenantguard/internal/policy"
)

const tenants = `apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: p1}
spec:
  namespaces: [p1, p1b]
  ingress: {allowedHosts: ["*.example.com"]}
---
apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: p2}
spec:
  namespaces: [p2]
  ingress: {allowedHosts: ["*.example.com"]}
`

func ingress(ns, name, host, path string) string {
	return `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ` + name + `, namespace: ` + ns + `, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  rules: [{host: "` + host + `", http: {paths: [{path: ` + path + `, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}}]
`
}

func parse(t *testing.T, docs ...string) []manifest.Object {
	t.Helper()
	objs, err := manifest.Parse("t.yaml", []byte(strings.Join(docs, "---\n")))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func rules(res check.Result) string {
	var out []string
	for _, f := range res.Findings {
		out = append(out, f.Namespace+"/"+f.Name+":"+string(f.Rule))
	}
	return strings.Join(out, " ")
}

func TestConflictsInsideOneBundle(t *testing.T) {
	opts := check.Options{Engine: policy.NewEngine(config.Default()), DefaultNamespace: "p1"}
	res, err := check.Run(opts, parse(t, tenants), nil, parse(t,
		ingress("p1", "a", "shop.example.com", "/"),
		ingress("p2", "b", "shop.example.com", "/"),
		ingress("p1", "c", "shop.example.com", "/"),
		ingress("p1", "d", "shop.example.com", "/api"),
		ingress("p1b", "e", "*.example.com", "/"),
		// The same object again is an update of the first: no conflict with itself.
		ingress("p1", "a", "shop.example.com", "/"),
	))
	if err != nil {
		t.Fatal(err)
	}
	want := "p2/b:host-ownership p1/c:host-path-conflict p1b/e:host-ownership"
	if got := rules(res); got != want {
		t.Fatalf("findings %q, want %q\n%v", got, want, res.Findings)
	}
	if res.Checked != 6 {
		t.Errorf("checked %d, want 6", res.Checked)
	}
}

func TestConflictsWithClusterSnapshot(t *testing.T) {
	opts := check.Options{Engine: policy.NewEngine(config.Default())}
	cluster := parse(t,
		ingress("p2", "live", "shop.example.com", "/"),
		`apiVersion: tenantguard.dev/v1alpha1
kind: HostClaim
metadata: {name: host.reserved.example.com}
spec: {host: reserved.example.com, match: Exact, tenant: p2, reserved: true}
`)
	res, err := check.Run(opts, parse(t, tenants), cluster, parse(t,
		ingress("p1", "a", "shop.example.com", "/"),
		ingress("p1", "b", "reserved.example.com", "/"),
		ingress("p2", "live", "shop.example.com", "/v2"),
	))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rules(res), "p1/a:host-ownership p1/b:host-ownership"; got != want {
		t.Fatalf("findings %q, want %q\n%v", got, want, res.Findings)
	}
	if !strings.Contains(res.Findings[1].Message, `reserved for tenant "p2"`) {
		t.Errorf("reservation message: %s", res.Findings[1].Message)
	}
}

func TestDefaultNamespaceAndTenantsMustBeTenants(t *testing.T) {
	opts := check.Options{Engine: policy.NewEngine(config.Default()), DefaultNamespace: "p2"}
	res, err := check.Run(opts, parse(t, tenants), nil, parse(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: NodePort, ports: [{port: 80}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rules(res) != "p2/s:service-node-port" {
		t.Fatalf("findings %v", res.Findings)
	}
	if _, err := check.Run(opts, parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"), nil, nil); err == nil {
		t.Fatal("a ConfigMap in --tenants must be an error")
	}
}

func TestBundleCannotRewriteTheRules(t *testing.T) {
	opts := check.Options{Engine: policy.NewEngine(config.Default()), User: policy.User{Name: "ci"}}
	widen := `apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: p2}
spec:
  namespaces: [p2]
  ingress: {allowedHosts: ["*.org"]}
`
	claim := `apiVersion: tenantguard.dev/v1alpha1
kind: HostClaim
metadata: {name: host.a.example.org}
spec: {host: a.example.org, match: Exact, namespace: p2}
`
	res, err := check.Run(opts, parse(t, tenants), nil, parse(t, widen, claim, ingress("p2", "x", "a.example.org", "/")))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rules(res), "/p2:admin-only /host.a.example.org:admin-only p2/x:host-allowlist"; got != want {
		t.Fatalf("findings %q, want %q", got, want)
	}
	// As an admin, the bundle's Tenant applies.
	opts.User.Groups = []string{"system:masters"}
	res, err = check.Run(opts, parse(t, tenants), nil, parse(t, widen, ingress("p2", "x", "a.example.org", "/")))
	if err != nil || len(res.Findings) != 0 {
		t.Fatalf("admin bundle: %v %v", res.Findings, err)
	}
}

func TestOlderGatewayVersionsAreChecked(t *testing.T) {
	opts := check.Options{Engine: policy.NewEngine(config.Default())}
	route := "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: HTTPRoute\nmetadata: {name: r, namespace: p2}\nspec: {hostnames: [shop.example.com]}\n"
	tls := "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\nmetadata: {name: t, namespace: p2}\nspec: {hostnames: [www.example.org]}\n"
	res, err := check.Run(opts, parse(t, tenants), parse(t, ingress("p1", "shop", "shop.example.com", "/")), parse(t, route, tls))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rules(res), "p2/r:host-ownership p2/t:host-allowlist"; got != want || res.Skipped != 0 {
		t.Fatalf("findings %q (skipped %d), want %q", got, res.Skipped, want)
	}
}

func TestRemovedIngressVersionsAreCheckedAndReported(t *testing.T) {
	opts := check.Options{Engine: policy.NewEngine(config.Default())}
	// A v1beta1 Ingress in the cluster snapshot owns its host.
	owner := `apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: legacy, namespace: p1, creationTimestamp: "2020-01-01T00:00:00Z"}
spec: {rules: [{host: legacy.example.com, http: {paths: [{path: /, backend: {serviceName: web, servicePort: 80}}]}}]}
`
	catchAll := `apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: catch, namespace: p2}
spec: {backend: {serviceName: web, servicePort: 80}}
`
	oldDeployment := `apiVersion: apps/v1beta2
kind: Deployment
metadata: {name: d, namespace: p2}
spec: {template: {spec: {containers: [{name: c, image: evil.io/x}]}}}
`
	res, err := check.Run(opts, parse(t, tenants), parse(t, owner), parse(t,
		catchAll,
		ingress("p2", "take", "legacy.example.com", "/"),
		oldDeployment,
	))
	if err != nil {
		t.Fatal(err)
	}
	want := "p2/catch:api-version-removed p2/catch:catch-all p2/take:host-ownership p2/d:api-version-removed p2/d:image-repository"
	if got := rules(res); got != want {
		t.Fatalf("findings %q, want %q\n%v", got, want, res.Findings)
	}
	if res.Checked != 3 || res.Skipped != 0 {
		t.Errorf("checked %d, skipped %d", res.Checked, res.Skipped)
	}
	f := res.Findings[0]
	if f.Kind != "Ingress" || f.Field != "apiVersion" || !strings.Contains(f.Message, "networking.k8s.io/v1beta1 Ingress is not served since Kubernetes 1.22") || !strings.Contains(f.Instead, "spec.defaultBackend") {
		t.Errorf("removed version finding: %s", f)
	}
	if !strings.Contains(res.Findings[2].Message, `namespace "p1" of tenant "p1"`) {
		t.Errorf("ownership finding: %s", res.Findings[2])
	}
}

func TestTenantsThatCannotWorkAreRefused(t *testing.T) {
	opts := check.Options{Engine: policy.NewEngine(config.Default())}
	for _, tc := range []struct{ spec, want string }{
		{"{ingress: {allowedHostPatterns: ['.*']}}", `admits every host, as "*" would`},
		{"{images: {allowedRepositories: ['docker.io/library/ubuntu:20.14']}}", "names a tag (:20.14)"},
		{"{registry: {immutableTags: ['']}}", "empty tag pattern"},
		{"{ingress: {allowedHostPatterns: ['[a-z)']}}", "`[a-z)`"},
	} {
		tenant := "apiVersion: tenantguard.dev/v1alpha1\nkind: Tenant\nmetadata: {name: p9}\nspec: " + tc.spec + "\n"
		_, err := check.Run(opts, parse(t, tenant), nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "t.yaml:1") {
			t.Errorf("--tenants %s: error %v, want one at t.yaml:1 with %q", tc.spec, err, tc.want)
		}
	}
}
