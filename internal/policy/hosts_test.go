package policy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/policy"
)

func ingress(ns, name, host, path string, extra ...string) string {
	meta := fmt.Sprintf("{name: %s, namespace: %s}", name, ns)
	spec := "ingressClassName: nginx\n  rules: [{host: '" + host + "', http: {paths: [{path: " + path + ", pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]"
	for _, e := range extra {
		if strings.HasPrefix(e, "metadata:") {
			meta = strings.TrimPrefix(e, "metadata:")
		} else {
			spec += "\n  " + e
		}
	}
	return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: " + meta + "\nspec:\n  " + spec
}

func route(kind, ns, name string, hostnames ...string) string {
	hn := "[]"
	if len(hostnames) > 0 {
		hn = "['" + strings.Join(hostnames, "', '") + "']"
	}
	return fmt.Sprintf("apiVersion: gateway.networking.k8s.io/v1\nkind: %s\nmetadata: {name: %s, namespace: %s}\nspec:\n  hostnames: %s", kind, name, ns, hn)
}

// step is one object applied in order; rules are the violations expected.
type step struct {
	manifest string
	rules    []policy.Rule
	contains string
}

func replay(t *testing.T, engine *policy.Engine, steps []step) {
	t.Helper()
	view := fixture(t)
	for i, s := range steps {
		d := view.Apply(engine, request(t, policy.Create, s.manifest, ""))
		var got []string
		for _, v := range d.Violations {
			got = append(got, string(v.Rule))
		}
		if strings.Join(got, ",") != strings.Join(rulesText(s.rules), ",") {
			t.Fatalf("step %d: rules %v, want %v\n%s\n%v", i, got, s.rules, s.manifest, d.Violations)
		}
		if s.contains != "" && !strings.Contains(d.Message("Ingress", "ns", "x"), s.contains) {
			t.Fatalf("step %d: message lacks %q:\n%s", i, s.contains, d.Message("Ingress", "ns", "x"))
		}
	}
}

func TestHostOwnership(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	own, path := []policy.Rule{policy.RuleHostOwnership}, []policy.Rule{policy.RuleHostPath}
	tests := map[string][]step{
		"hijack across tenants (the field report)": {
			{manifest: ingress("p1", "shop", "shop.example.com", "/")},
			{manifest: ingress("p2", "shop", "shop.example.com", "/"), rules: own, contains: `namespace "p1" of tenant "project1"`},
			{manifest: ingress("p2", "shop", "shop.example.com", "/other"), rules: own},
		},
		"another namespace of the same tenant": {
			{manifest: ingress("p1", "a", "a.p1.example.com", "/")},
			{manifest: ingress("p1-web", "a", "a.p1.example.com", "/x"), rules: own},
		},
		"same namespace: same path refused, other path allowed, canary allowed": {
			{manifest: ingress("p1", "a", "a.p1.example.com", "/")},
			{manifest: ingress("p1", "b", "a.p1.example.com", "/"), rules: path, contains: `Ingress "a"`},
			{manifest: ingress("p1", "acme", "a.p1.example.com", "/.well-known/acme-challenge/x")},
			{manifest: ingress("p1", "c", "A.P1.example.com.", "/"), rules: path},
			{manifest: ingress("p1", "canary", "a.p1.example.com", "/", "metadata:{name: canary, namespace: p1, annotations: {nginx.ingress.kubernetes.io/canary: 'True'}}")},
		},
		"trailing slash on a prefix is the same path": {
			{manifest: ingress("p1", "a", "a.p1.example.com", "/api")},
			{manifest: ingress("p1", "b", "a.p1.example.com", "/api/"), rules: path},
		},
		"TLS hosts count": {
			{manifest: ingress("p1", "a", "a.shared.example.com", "/")},
			{manifest: ingress("p2", "b", "b.shared.example.com", "/", "tls: [{hosts: [a.shared.example.com], secretName: s}]"), rules: own},
		},
		"annotation hosts count": {
			{manifest: ingress("p1", "a", "a.shared.example.com", "/")},
			{manifest: ingress("p2", "b", "b.shared.example.com", "/", "metadata:{name: b, namespace: p2, annotations: {nginx.ingress.kubernetes.io/server-alias: 'x.shared.example.com, a.shared.example.com'}}"), rules: own},
			{manifest: ingress("p2", "c", "c.shared.example.com", "/", "metadata:{name: c, namespace: p2, annotations: {appgw.ingress.kubernetes.io/hostname-extension: a.shared.example.com}}"), rules: own},
		},
		"ingress wildcard blocks a host it matches, and the other way round": {
			{manifest: ingress("p1", "w", "*.shared.example.com", "/")},
			{manifest: ingress("p2", "x", "x.shared.example.com", "/"), rules: own, contains: `overlaps "*.shared.example.com"`},
			{manifest: ingress("p2", "deep", "y.x.shared.example.com", "/")}, // one label only
		},
		"host first, then the wildcard": {
			{manifest: ingress("p2", "x", "x.shared.example.com", "/")},
			{manifest: ingress("p1", "w", "*.shared.example.com", "/"), rules: own},
		},
		"a gateway listener cannot take a route's host": {
			{manifest: route("HTTPRoute", "p1", "shop", "shop.example.com")},
			{manifest: "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: p2}\nspec: {gatewayClassName: c, listeners: [{name: a, port: 443, protocol: HTTPS, hostname: 'shop.example.com'}]}", rules: own},
		},
		"gateway wildcard matches any depth": {
			{manifest: route("HTTPRoute", "p1", "w", "*.shared.example.com")},
			{manifest: ingress("p2", "deep", "y.x.shared.example.com", "/"), rules: own},
			{manifest: route("HTTPRoute", "p2", "r", "*.x.shared.example.com"), rules: own},
		},
		"HTTPRoute cannot take an Ingress's host": {
			{manifest: ingress("p1", "shop", "shop.example.com", "/")},
			{manifest: route("HTTPRoute", "p2", "shop", "shop.example.com"), rules: own},
			{manifest: route("GRPCRoute", "p2", "shop", "shop.example.com"), rules: own},
			{manifest: route("TLSRoute", "p2", "shop", "shop.example.com"), rules: own},
		},
		"multi-host ingress with one foreign host claims nothing": {
			{manifest: ingress("p1", "a", "a.shared.example.com", "/")},
			{manifest: ingress("p2", "m", "b.shared.example.com", "/", "tls: [{hosts: [b.shared.example.com, a.shared.example.com], secretName: s}]"), rules: own},
			// b was not claimed, so project1 can take it.
			{manifest: ingress("p1", "b", "b.shared.example.com", "/")},
		},
		"namespaces without a tenant own their hosts too": {
			{manifest: ingress("default", "legacy", "shop.example.com", "/")},
			{manifest: ingress("p1", "shop", "shop.example.com", "/"), rules: own, contains: `namespace "default"`},
		},
		"object ownership mode": {
			{manifest: ingress("s1", "a", "a.strict.example.com", "/")},
			{manifest: ingress("s1", "b", "a.strict.example.com", "/other"), rules: []policy.Rule{policy.RuleHostOwnership, policy.RuleHostPath}},
		},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) { replay(t, engine, steps) })
	}
}

func TestHostRulesForTenants(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	view := fixture(t)
	ing := func(spec string) string {
		return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i, namespace: p1}\nspec: " + spec
	}
	backend := "backend: {service: {name: web, port: {number: 80}}}"
	cases := []ruleCase{
		{name: "allowed host and class", manifest: ing("{ingressClassName: nginx, rules: [{host: a.p1.example.com}]}")},
		{name: "host outside allowlist", manifest: ing("{ingressClassName: nginx, rules: [{host: a.p2.example.com}]}"),
			rules: []policy.Rule{policy.RuleHostAllowlist}, field: "spec.rules[0].host"},
		{name: "regex admits a whole name", manifest: ing("{ingressClassName: nginx, rules: [{host: api-42.example.com}]}")},
		{name: "regex is anchored", manifest: ing("{ingressClassName: nginx, rules: [{host: api-42.example.com.evil.io}]}"),
			rules: []policy.Rule{policy.RuleHostAllowlist}},
		{name: "regex never grants a wildcard", manifest: ing("{ingressClassName: nginx, rules: [{host: '*.example.com'}]}"),
			rules: []policy.Rule{policy.RuleHostAllowlist}, contains: "wider"},
		{name: "wildcard within allowlist", manifest: ing("{ingressClassName: nginx, rules: [{host: '*.x.p1.example.com'}]}")},
		{name: "wildcard wider than allowlist", manifest: ing("{ingressClassName: nginx, rules: [{host: '*.com'}]}"),
			rules: []policy.Rule{policy.RuleHostAllowlist}},
		{name: "rule without host", manifest: ing("{ingressClassName: nginx, rules: [{http: {paths: [{path: /, pathType: Prefix, " + backend + "}]}}]}"),
			rules: []policy.Rule{policy.RuleCatchAll}, field: "spec.rules[0].host"},
		{name: "default backend", manifest: ing("{ingressClassName: nginx, defaultBackend: {service: {name: web, port: {number: 80}}}}"),
			rules: []policy.Rule{policy.RuleCatchAll}, field: "spec.defaultBackend"},
		{name: "tls without hosts", manifest: ing("{ingressClassName: nginx, tls: [{secretName: s}], rules: [{host: a.p1.example.com}]}"),
			rules: []policy.Rule{policy.RuleCatchAll}},
		{name: "class not allowed", manifest: ing("{ingressClassName: azure-application-gateway, rules: [{host: a.p1.example.com}]}"),
			rules: []policy.Rule{policy.RuleIngressClass}},
		{name: "class missing", manifest: ing("{rules: [{host: a.p1.example.com}]}"),
			rules: []policy.Rule{policy.RuleIngressClass}, field: "spec.ingressClassName"},
		{name: "class by annotation", manifest: "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i, namespace: p1, annotations: {kubernetes.io/ingress.class: nginx}}\nspec: {rules: [{host: a.p1.example.com}]}"},
		{name: "IP address host", manifest: ing("{ingressClassName: nginx, tls: [{hosts: ['10.0.0.1'], secretName: s}], rules: [{host: a.p1.example.com}]}"),
			rules: []policy.Rule{policy.RuleHostInvalid}, contains: "IP address"},
		{name: "route without hostnames", manifest: route("HTTPRoute", "p1", "r"), rules: []policy.Rule{policy.RuleCatchAll}, field: "spec.hostnames"},
		{name: "route with allowed hostname", manifest: route("HTTPRoute", "p1", "r", "a.p1.example.com")},
		{name: "non-tenant namespace may use any valid host", manifest: ingress("default", "i", "anything.example.org", "/")},
		{name: "gateway listener hostnames count", manifest: "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: p1}\nspec: {gatewayClassName: c, listeners: [{name: a, port: 443, protocol: HTTPS, hostname: 'x.p2.example.com'}]}",
			rules: []policy.Rule{policy.RuleHostAllowlist}, field: "spec.listeners[0].hostname"},
		{name: "gateway listener without hostname", manifest: "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: p1}\nspec: {gatewayClassName: c, listeners: [{name: a, port: 80, protocol: HTTP}]}",
			rules: []policy.Rule{policy.RuleCatchAll}},
		{name: "TCP route takes a whole port", manifest: "apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: {name: t, namespace: p1}\nspec: {rules: [{backendRefs: [{name: db, port: 5432}]}]}",
			rules: []policy.Rule{policy.RuleCatchAll}},
	}
	runCases(t, engine, view, cases)
}

func TestHostLimit(t *testing.T) {
	cfg := config.Default()
	cfg.MaxHostsPerObject = 2
	aliases := "metadata:{name: many, namespace: p1, annotations: {nginx.ingress.kubernetes.io/server-alias: 'b.p1.example.com,c.p1.example.com'}}"
	d := policy.NewEngine(cfg).Evaluate(request(t, policy.Create, ingress("p1", "many", "a.p1.example.com", "/", aliases), ""), fixture(t))
	if len(d.Violations) != 1 || d.Violations[0].Rule != policy.RuleHostLimit || len(d.Claims) != 0 {
		t.Fatalf("three hosts over a limit of two: %v, claims %v", d.Violations, d.Claims)
	}
}

func TestHostUpdateKeepsPreexistingConflict(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	view := fixture(t)
	view.Apply(engine, request(t, policy.Create, ingress("p1", "shop", "shop.example.com", "/"), ""))
	// p2's Ingress existed before the guard: updating it for another reason
	// keeps working, adding a new conflict does not.
	old := ingress("p2", "shop", "shop.example.com", "/")
	d := engine.Evaluate(request(t, policy.Update, ingress("p2", "shop", "shop.example.com", "/", "tls: [{hosts: [shop.example.com], secretName: s}]"), old), view)
	if !d.Allowed() || len(d.Warnings) == 0 {
		t.Fatalf("update of a pre-existing conflict: %v, warnings %v", d.Violations, d.Warnings)
	}
	d = engine.Evaluate(request(t, policy.Update, ingress("p2", "shop", "shop.example.com", "/", "tls: [{hosts: [a.p1.example.com], secretName: s}]"), old), view)
	if d.Allowed() {
		t.Fatal("an update that adds another foreign host must be refused")
	}
}

func TestRedactOwnerNamespace(t *testing.T) {
	cfg := config.Default()
	cfg.RedactOwnerNamespace = true
	engine := policy.NewEngine(cfg)
	replay(t, engine, []step{
		{manifest: ingress("p1", "shop", "shop.example.com", "/")},
		{manifest: ingress("p2", "shop", "shop.example.com", "/"), rules: []policy.Rule{policy.RuleHostOwnership}, contains: `belongs to tenant "project1"`},
	})
	view := fixture(t)
	view.Apply(engine, request(t, policy.Create, ingress("p1", "shop", "shop.example.com", "/"), ""))
	d := engine.Evaluate(request(t, policy.Create, ingress("p2", "shop", "shop.example.com", "/"), ""), view)
	if strings.Contains(d.Message("Ingress", "p2", "shop"), `"p1"`) {
		t.Fatalf("owner namespace shown to another tenant: %s", d.Message("Ingress", "p2", "shop"))
	}
}

func TestClaimsAreTheUnownedHosts(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	view := fixture(t)
	view.Apply(engine, request(t, policy.Create, ingress("p1", "a", "a.p1.example.com", "/"), ""))
	d := engine.Evaluate(request(t, policy.Create, ingress("p1", "b", "a.p1.example.com", "/b", "tls: [{hosts: [b.p1.example.com], secretName: s}]"), ""), view)
	if !d.Allowed() {
		t.Fatal(d.Violations)
	}
	if len(d.Claims) != 1 || d.Claims[0].String() != "b.p1.example.com" || d.ClaimOwner.Namespace != "p1" || d.ClaimOwner.Tenant != "project1" {
		t.Fatalf("claims %v for %+v, want only b.p1.example.com for p1/project1", d.Claims, d.ClaimOwner)
	}
}
