package policy_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/policy"
)

const tenantsYAML = `
apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: project1}
spec:
  namespaces: [p1, p1-prod, p1-web]
  ingress:
    allowedHosts: ["*.p1.example.com", shop.example.com, "*.shared.example.com"]
    allowedHostPatterns: ['api-[0-9]+\.example\.com']
    allowedClasses: [nginx]
  services:
    loadBalancer: InternalOnly
    allowedExternalNames: [db.example.com]
  images:
    allowedRepositories: ["myacr.azurecr.io/project1/*", docker.io/library/nginx]
    requireDigestNamespaces: [p1-prod]
---
apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: project2}
spec:
  namespaces: [p2, p2-strict]
  ingress:
    allowedHosts: ["*.p2.example.com", "*.shared.example.com", shop.example.com]
  images:
    allowedRepositories: ["myacr.azurecr.io/project2/**"]
---
apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: linked}
spec:
  namespaces: [pl]
  services: {loadBalancer: InternalOnly, allowPrivateLink: true}
---
apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: strict}
spec:
  namespaces: [s1]
  ingress:
    allowedHosts: ["*.strict.example.com"]
    hostOwnership: Object
`

// fixture is a snapshot with the tenants above and the namespaces labelled.
func fixture(t *testing.T) *policy.Snapshot {
	t.Helper()
	s := policy.NewSnapshot()
	for _, doc := range strings.Split(tenantsYAML, "\n---\n") {
		obj, _, err := kinds.DecodeStrict([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		tn, err := policy.CompileTenant(obj.(*v1alpha1.Tenant))
		if err != nil {
			t.Fatal(err)
		}
		s.SetTenant(tn)
		for _, ns := range tn.Spec.Namespaces {
			s.SetNamespace(ns, map[string]string{v1alpha1.TenantLabel: tn.Name})
		}
	}
	s.SetNamespace("default", nil)
	return s
}

var tenantUser = policy.User{Name: "alice", Groups: []string{"project1-devs", "system:authenticated"}}

// request decodes a manifest into a request by alice.
func request(t *testing.T, op policy.Operation, manifest, old string) policy.Request {
	t.Helper()
	obj, gvk, err := kinds.DecodeStrict([]byte(manifest))
	if err != nil {
		t.Fatalf("decode %s: %v", manifest, err)
	}
	m, _ := meta.Accessor(obj)
	req := policy.Request{Operation: op, Object: obj, Kind: *gvk, Namespace: m.GetNamespace(), Name: m.GetName(), User: tenantUser}
	if old != "" {
		if req.OldObject, _, err = kinds.DecodeStrict([]byte(old)); err != nil {
			t.Fatal(err)
		}
	}
	return req
}

type ruleCase struct {
	name     string
	manifest string
	old      string
	// rules expected, in order; empty means allowed.
	rules []policy.Rule
	// fields and message fragments that must appear.
	field, contains string
}

func runCases(t *testing.T, engine *policy.Engine, view policy.View, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op := policy.Create
			if tc.old != "" {
				op = policy.Update
			}
			d := engine.Evaluate(request(t, op, tc.manifest, tc.old), view)
			var got []policy.Rule
			for _, v := range d.Violations {
				got = append(got, v.Rule)
			}
			if strings.Join(rulesText(got), ",") != strings.Join(rulesText(tc.rules), ",") {
				t.Fatalf("rules %v, want %v\n%v", got, tc.rules, d.Violations)
			}
			for _, v := range d.Violations {
				if v.Message == "" || v.Instead == "" || v.Field == "" {
					t.Errorf("violation lacks a message, an instead or a field: %+v", v)
				}
			}
			if tc.field != "" && (len(d.Violations) == 0 || d.Violations[0].Field != tc.field) {
				t.Errorf("field: got %+v, want %q", d.Violations, tc.field)
			}
			if tc.contains != "" && !strings.Contains(d.Message("Kind", "ns", "name"), tc.contains) {
				t.Errorf("message lacks %q:\n%s", tc.contains, d.Message("Kind", "ns", "name"))
			}
		})
	}
}

func rulesText(rs []policy.Rule) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func svc(ns, spec string, annotations ...string) string {
	a := ""
	if len(annotations) > 0 {
		a = "\n  annotations: {" + strings.Join(annotations, ", ") + "}"
	}
	return "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: " + ns + a + "\nspec: " + spec
}

func TestServices(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	view := fixture(t)
	internal := `service.beta.kubernetes.io/azure-load-balancer-internal: "true"`
	cases := []ruleCase{
		{name: "cluster IP", manifest: svc("p1", "{ports: [{port: 80}]}")},
		{name: "public load balancer refused (InternalOnly)", manifest: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}"),
			rules: []policy.Rule{policy.RuleLoadBalancer}, contains: "azure-load-balancer-internal"},
		{name: "internal load balancer allowed", manifest: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}", internal)},
		{name: "internal annotation with the wrong value", manifest: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}", `service.beta.kubernetes.io/azure-load-balancer-internal: "false"`),
			rules: []policy.Rule{policy.RuleLoadBalancer}, field: "metadata.annotations[service.beta.kubernetes.io/azure-load-balancer-internal]",
			contains: `is "false"; it makes the load balancer internal only when its value is "true"`},
		{name: "private link service refused", manifest: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}", internal, `service.beta.kubernetes.io/azure-pls-create: "true"`),
			rules: []policy.Rule{policy.RulePrivateLink}, field: "metadata.annotations[service.beta.kubernetes.io/azure-pls-create]", contains: "Private Link Service"},
		{name: "private link read without case", manifest: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}", internal, `service.beta.kubernetes.io/azure-pls-create: "True"`),
			rules: []policy.Rule{policy.RulePrivateLink}},
		{name: "private link off", manifest: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}", internal, `service.beta.kubernetes.io/azure-pls-create: "false"`)},
		{name: "private link allowed by the tenant", manifest: svc("pl", "{type: LoadBalancer, ports: [{port: 80}]}", internal, `service.beta.kubernetes.io/azure-pls-create: "true"`)},
		{name: "update adding private link refused", manifest: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}", internal, `service.beta.kubernetes.io/azure-pls-create: "true"`),
			old: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}", internal), rules: []policy.Rule{policy.RulePrivateLink}},
		{name: "external name to an in-cluster name", manifest: svc("p2", "{type: ExternalName, externalName: kubernetes.default.svc.cluster.local}"),
			rules: []policy.Rule{policy.RuleExternalName}, contains: `"kubernetes.default.svc.cluster.local", an in-cluster Service name`},
		{name: "external name to a short in-cluster name", manifest: svc("p2", "{type: ExternalName, externalName: db.other.svc}"),
			rules: []policy.Rule{policy.RuleExternalName}, contains: "in-cluster"},
		{name: "another cloud's internal annotation is public on Azure", manifest: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}", `service.beta.kubernetes.io/aws-load-balancer-scheme: internal`),
			rules: []policy.Rule{policy.RuleLoadBalancer}},
		{name: "load balancer refused (Deny)", manifest: svc("p2", "{type: LoadBalancer, ports: [{port: 80}]}", internal),
			rules: []policy.Rule{policy.RuleLoadBalancer}, field: "spec.type", contains: `tenant "project2"`},
		{name: "node port refused", manifest: svc("p1", "{type: NodePort, ports: [{port: 80}]}"),
			rules: []policy.Rule{policy.RuleNodePort}, field: "spec.type"},
		{name: "external IPs refused", manifest: svc("p1", "{ports: [{port: 80}], externalIPs: [10.0.0.1, 10.0.0.2]}"),
			rules: []policy.Rule{policy.RuleExternalIPs, policy.RuleExternalIPs}, field: "spec.externalIPs[0]", contains: "CVE-2020-8554"},
		{name: "external name in allowlist", manifest: svc("p1", "{type: ExternalName, externalName: DB.example.com.}")},
		{name: "external name outside allowlist", manifest: svc("p1", "{type: ExternalName, externalName: evil.example.org}"),
			rules: []policy.Rule{policy.RuleExternalName}},
		{name: "external name without allowlist", manifest: svc("p2", "{type: ExternalName, externalName: db.example.com}"),
			rules: []policy.Rule{policy.RuleExternalName}},
		{name: "namespace without tenant is not held to service rules", manifest: svc("default", "{type: LoadBalancer, ports: [{port: 80}]}")},
		{name: "update ClusterIP to LoadBalancer refused", manifest: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}"),
			old: svc("p1", "{ports: [{port: 80}]}"), rules: []policy.Rule{policy.RuleLoadBalancer}},
		{name: "update dropping the internal annotation refused", manifest: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}"),
			old: svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}", internal), rules: []policy.Rule{policy.RuleLoadBalancer}},
		{name: "update of a load balancer that predates the guard is kept", manifest: svc("p2", "{type: LoadBalancer, ports: [{port: 81}]}"),
			old: svc("p2", "{type: LoadBalancer, ports: [{port: 80}]}")},
		{name: "update making a kept internal load balancer public is refused", manifest: svc("p2", "{type: LoadBalancer, ports: [{port: 80}]}"),
			old: svc("p2", "{type: LoadBalancer, ports: [{port: 80}]}", internal), rules: []policy.Rule{policy.RuleLoadBalancer}},
		{name: "update opening another node port is refused", manifest: svc("p1", "{type: NodePort, ports: [{port: 80, nodePort: 30080}, {port: 81, nodePort: 30081}]}"),
			old: svc("p1", "{type: NodePort, ports: [{port: 80, nodePort: 30080}]}"), rules: []policy.Rule{policy.RuleNodePort}},
		{name: "update keeping the node ports of a kept NodePort", manifest: svc("p1", "{type: NodePort, selector: {a: b}, ports: [{port: 80, nodePort: 30080}]}"),
			old: svc("p1", "{type: NodePort, ports: [{port: 80, nodePort: 30080}]}")},
	}
	runCases(t, engine, view, cases)
}

func TestInternalAnnotationsOfAnotherCloud(t *testing.T) {
	cfg := config.Default()
	cfg.InternalLoadBalancerAnnotations = []config.Annotation{config.AWSInternal}
	d := policy.NewEngine(cfg).Evaluate(request(t, policy.Create, svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}",
		`service.beta.kubernetes.io/aws-load-balancer-scheme: internal`), ""), fixture(t))
	if !d.Allowed() {
		t.Fatalf("configured for AWS, its internal annotation admits the Service: %v", d.Violations)
	}
}

func TestServiceExemptUser(t *testing.T) {
	cfg := config.Default()
	cfg.ExemptGroups = []string{"platform"}
	engine := policy.NewEngine(cfg)
	req := request(t, policy.Create, svc("p1", "{type: NodePort, ports: [{port: 80}]}"), "")
	req.User = policy.User{Name: "ci", Groups: []string{"platform"}}
	if d := engine.Evaluate(req, fixture(t)); !d.Allowed() {
		t.Fatalf("exempt group refused: %v", d.Violations)
	}
}

func deployment(ns string, images ...string) string {
	var cs []string
	for i, img := range images {
		cs = append(cs, "{name: c"+string(rune('0'+i))+", image: '"+img+"'}")
	}
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: ` + ns + `}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec:
      containers: [` + strings.Join(cs, ", ") + `]`
}

func TestImages(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	view := fixture(t)
	digest := "@sha256:" + strings.Repeat("a", 64)
	cases := []ruleCase{
		{name: "own repository", manifest: deployment("p1", "myacr.azurecr.io/project1/app:1.0")},
		{name: "registry host is case-insensitive", manifest: deployment("p1", "MyACR.azurecr.io/project1/app:1.0")},
		{name: "repository path is not", manifest: deployment("p1", "myacr.azurecr.io/Project1/app:1.0"),
			rules: []policy.Rule{policy.RuleImage}, contains: "not a valid image reference"},
		{name: "nginx normalises to docker.io/library/nginx", manifest: deployment("p1", "nginx:1.27")},
		{name: "attacker/app is docker.io/attacker/app", manifest: deployment("p1", "attacker/app"),
			rules: []policy.Rule{policy.RuleImage}, contains: "docker.io/attacker/app"},
		{name: "another tenant's repository", manifest: deployment("p1", "myacr.azurecr.io/project2/app:1"),
			rules: []policy.Rule{policy.RuleImage}, field: "spec.template.spec.containers[0].image"},
		{name: "prefix is not a boundary (project10)", manifest: deployment("p1", "myacr.azurecr.io/project10/app:1"),
			rules: []policy.Rule{policy.RuleImage}},
		{name: "lookalike registry host", manifest: deployment("p1", "myacr.azurecr.io.evil.com/project1/app:1"),
			rules: []policy.Rule{policy.RuleImage}},
		{name: "registry with port is another registry", manifest: deployment("p1", "myacr.azurecr.io:5000/project1/app:1"),
			rules: []policy.Rule{policy.RuleImage}, contains: "names the registry with port :5000"},
		{name: "the default port too, and the refusal says the port is the difference", manifest: deployment("p1", "myacr.azurecr.io:443/project1/app"),
			rules: []policy.Rule{policy.RuleImage}, contains: "without the port (myacr.azurecr.io/project1/app)"},
		{name: "a port on a registry not allowed at all", manifest: deployment("p1", "evil.io:443/project1/app"),
			rules: []policy.Rule{policy.RuleImage}, contains: "is not in the repositories"},
		{name: "one level only for /*", manifest: deployment("p1", "myacr.azurecr.io/project1/team/app:1"),
			rules: []policy.Rule{policy.RuleImage}},
		{name: "any depth for /**", manifest: deployment("p2", "myacr.azurecr.io/project2/team/app:1")},
		{name: "second of five containers foreign", manifest: deployment("p1", "nginx", "evil.io/x", "nginx", "nginx", "nginx"),
			rules: []policy.Rule{policy.RuleImage}, field: "spec.template.spec.containers[1].image"},
		{name: "digest required in production namespace", manifest: deployment("p1-prod", "myacr.azurecr.io/project1/app:1.0"),
			rules: []policy.Rule{policy.RuleImageDigest}, contains: "@sha256:"},
		{name: "digest given in production namespace", manifest: deployment("p1-prod", "myacr.azurecr.io/project1/app"+digest)},
		{name: "tag and digest in production namespace", manifest: deployment("p1-prod", "myacr.azurecr.io/project1/app:1.0"+digest)},
		{name: "invalid reference", manifest: deployment("p1", "Not A Ref"), rules: []policy.Rule{policy.RuleImage}},
		{name: "no tenant, no image rules", manifest: deployment("default", "evil.io/x")},
		{name: "pod init, ephemeral and image volume", manifest: `apiVersion: v1
kind: Pod
metadata: {name: p, namespace: p1}
spec:
  initContainers: [{name: i, image: evil.io/init}]
  containers: [{name: c, image: nginx}]
  ephemeralContainers: [{name: e, image: evil.io/debug}]
  volumes: [{name: v, image: {reference: evil.io/data}}]`,
			rules: []policy.Rule{policy.RuleImage, policy.RuleImage, policy.RuleImage}, field: "spec.initContainers[0].image"},
		{name: "cronjob template", manifest: `apiVersion: batch/v1
kind: CronJob
metadata: {name: c, namespace: p1}
spec:
  schedule: "* * * * *"
  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: evil.io/x}]}}}}`,
			rules: []policy.Rule{policy.RuleImage}, field: "spec.jobTemplate.spec.template.spec.containers[0].image"},
		{name: "statefulset", manifest: `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s, namespace: p1}
spec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: evil.io/x}]}}}`,
			rules: []policy.Rule{policy.RuleImage}},
		{name: "update changing one foreign image to another is refused", manifest: deployment("p1", "evil.io/b"),
			old: deployment("p1", "evil.io/a"), rules: []policy.Rule{policy.RuleImage}},
		{name: "update keeping a foreign image that predates the guard", manifest: deployment("p1", "evil.io/a", "nginx"),
			old: deployment("p1", "evil.io/a")},
	}
	runCases(t, engine, view, cases)
}

func TestNamespaceLabel(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	view := fixture(t)
	ns := func(label string) string {
		if label == "" {
			return "apiVersion: v1\nkind: Namespace\nmetadata: {name: p1}"
		}
		return "apiVersion: v1\nkind: Namespace\nmetadata: {name: p1, labels: {tenantguard.dev/tenant: " + label + "}}"
	}
	cases := []ruleCase{
		{name: "tenant sets the label on create", manifest: ns("project1"), rules: []policy.Rule{policy.RuleNamespaceLabel}, contains: `"alice"`},
		{name: "tenant moves namespace to another tenant", manifest: ns("project2"), old: ns("project1"), rules: []policy.Rule{policy.RuleNamespaceLabel}},
		{name: "tenant removes the label", manifest: ns(""), old: ns("project1"), rules: []policy.Rule{policy.RuleNamespaceLabel}},
		{name: "tenant changes other labels", manifest: ns("project1"), old: ns("project1")},
		{name: "namespace without label", manifest: ns("")},
	}
	runCases(t, engine, view, cases)

	for _, u := range []policy.User{
		{Name: "root", Groups: []string{"system:masters"}},
		{Name: "system:serviceaccount:tenantguard-system:tenantguard"},
	} {
		req := request(t, policy.Update, ns("project2"), ns("project1"))
		req.User = u
		if d := engine.Evaluate(req, view); !d.Allowed() {
			t.Errorf("%s may move a namespace: %v", u.Name, d.Violations)
		}
	}
}

func TestTenantValidation(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	view := fixture(t)
	tenant := func(spec string) string {
		return "apiVersion: tenantguard.dev/v1alpha1\nkind: Tenant\nmetadata: {name: project3}\nspec: " + spec
	}
	cases := []ruleCase{
		{name: "valid", manifest: tenant("{namespaces: [p3], ingress: {allowedHosts: ['*.p3.example.com']}}")},
		{name: "namespace of another tenant", manifest: tenant("{namespaces: [p1]}"), rules: []policy.Rule{policy.RuleTenantSpec}, contains: `tenant "project1"`},
		{name: "excluded namespace", manifest: tenant("{namespaces: [kube-system]}"), rules: []policy.Rule{policy.RuleTenantSpec}},
		{name: "bad regex", manifest: tenant("{ingress: {allowedHostPatterns: ['(']}}"), rules: []policy.Rule{policy.RuleTenantSpec}},
		{name: "bad host", manifest: tenant("{ingress: {allowedHosts: ['a..b']}}"), rules: []policy.Rule{policy.RuleTenantSpec}},
		{name: "image pattern without registry", manifest: tenant("{images: {allowedRepositories: ['project1/*']}}"), rules: []policy.Rule{policy.RuleTenantSpec}, contains: "registry host"},
		{name: "bare wildcard repository", manifest: tenant("{registry: {repositories: [{pattern: '**', actions: [pull]}]}}"), rules: []policy.Rule{policy.RuleTenantSpec}},
		{name: "digest namespace not the tenant's", manifest: tenant("{namespaces: [p3], images: {requireDigestNamespaces: [p9]}}"), rules: []policy.Rule{policy.RuleTenantSpec}},
		{name: "bad regex shown as written", manifest: tenant("{ingress: {allowedHostPatterns: ['[a-z)']}}"), rules: []policy.Rule{policy.RuleTenantSpec},
			contains: "spec.ingress.allowedHostPatterns[0]: \"[a-z)\" is not a regular expression (RE2): missing closing ] in `[a-z)`"},
		{name: "regex cannot break out of the anchoring", manifest: tenant(`{ingress: {allowedHostPatterns: ['a)|(.*']}}`), rules: []policy.Rule{policy.RuleTenantSpec}, contains: "not a regular expression"},
		{name: "regex that matches every host", manifest: tenant("{ingress: {allowedHostPatterns: ['.*']}}"), rules: []policy.Rule{policy.RuleTenantSpec}, contains: `admits every host, as "*" would`},
		{name: "regex that matches every name of letters and dots", manifest: tenant("{ingress: {allowedHostPatterns: ['[a-z.-]+']}}"), rules: []policy.Rule{policy.RuleTenantSpec}, contains: "any domain"},
		{name: "upper-case regex never matches", manifest: tenant(`{ingress: {allowedHostPatterns: ['API-[0-9]+\.example\.com']}}`), rules: []policy.Rule{policy.RuleTenantSpec}, contains: `upper-case letter "A"`},
		{name: "case-insensitive regex", manifest: tenant(`{ingress: {allowedHostPatterns: ['(?i)API-[0-9]+\.example\.com']}}`)},
		{name: "empty regex", manifest: tenant("{ingress: {allowedHostPatterns: ['']}}"), rules: []policy.Rule{policy.RuleTenantSpec}, contains: "empty pattern"},
		{name: "regex tied to a domain", manifest: tenant(`{ingress: {allowedHostPatterns: ['(api|web)-[0-9]+\.example\.com']}}`)},
		{name: "image pattern with a tag", manifest: tenant("{images: {allowedRepositories: ['docker.io/library/ubuntu:20.14']}}"), rules: []policy.Rule{policy.RuleTenantSpec},
			contains: `names a tag (:20.14); a pattern names repositories, so it would never match. Write docker.io/library/ubuntu`},
		{name: "image pattern with a digest", manifest: tenant("{images: {allowedRepositories: ['docker.io/library/ubuntu@sha256:" + strings.Repeat("a", 64) + "']}}"), rules: []policy.Rule{policy.RuleTenantSpec}, contains: "names a digest"},
		{name: "image pattern with a registry port", manifest: tenant("{images: {allowedRepositories: ['myacr.azurecr.io:443/project1/*']}}")},
		{name: "empty image pattern", manifest: tenant("{images: {allowedRepositories: ['']}}"), rules: []policy.Rule{policy.RuleTenantSpec}, contains: "empty pattern"},
		{name: "registry pattern with a tag", manifest: tenant("{registry: {repositories: [{pattern: 'project1/app:v1', actions: [pull]}]}}"), rules: []policy.Rule{policy.RuleTenantSpec}, contains: "names a tag"},
		{name: "self-service namespaces", manifest: tenant("{namespaces: [p3], namespaceQuota: 4}")},
		{name: "empty immutable tag", manifest: tenant("{registry: {immutableTags: ['v*', '']}}"), rules: []policy.Rule{policy.RuleTenantSpec}, contains: "spec.registry.immutableTags[1]: empty tag pattern"},
		{name: "empty class", manifest: tenant("{ingress: {allowedClasses: [nginx, '']}}"), rules: []policy.Rule{policy.RuleTenantSpec}, contains: "allowedClasses[1]: empty class name"},
	}
	runCases(t, engine, view, cases)
}

func TestUnknownTenantLabelFailsClosed(t *testing.T) {
	view := fixture(t)
	view.SetNamespace("orphan", map[string]string{v1alpha1.TenantLabel: "no-such-tenant"})
	engine := policy.NewEngine(config.Default())
	d := engine.Evaluate(request(t, policy.Create, svc("orphan", "{type: NodePort, ports: [{port: 80}]}"), ""), view)
	if d.Allowed() {
		t.Fatal("a namespace labelled for a missing tenant must get no rights")
	}
}

func TestExcludedNamespaceIsNotJudged(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	d := engine.Evaluate(request(t, policy.Create, svc("kube-system", "{type: LoadBalancer, ports: [{port: 80}]}"), ""), fixture(t))
	if !d.Allowed() {
		t.Fatal(d.Violations)
	}
}

func TestDecisionMessageNamesObjectAndRule(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	d := engine.Evaluate(request(t, policy.Create, svc("p2", "{type: LoadBalancer, ports: [{port: 80}]}"), ""), fixture(t))
	msg := d.Message("Service", "p2", "web")
	for _, want := range []string{"Service p2/web", "spec.type", "rule service-load-balancer", "Instead:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

func TestInternalLoadBalancerAskingForAPublicAddressWarns(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	internal := `service.beta.kubernetes.io/azure-load-balancer-internal: "true"`
	cases := []struct {
		name, annotation, want string
	}{
		{"public IP by name", `service.beta.kubernetes.io/azure-pip-name: web-ip`, "names a public IP"},
		{"public IPv4 address", `service.beta.kubernetes.io/azure-load-balancer-ipv4: 20.1.2.3`, `"20.1.2.3" is not a private address`},
		{"not an address", `service.beta.kubernetes.io/azure-load-balancer-ipv4: x`, "not a private address"},
		{"private IPv4 address", `service.beta.kubernetes.io/azure-load-balancer-ipv4: 10.240.0.40`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := engine.Evaluate(request(t, policy.Create, svc("p1", "{type: LoadBalancer, ports: [{port: 80}]}", internal, tc.annotation), ""), fixture(t))
			if !d.Allowed() {
				t.Fatalf("refused: %v", d.Violations)
			}
			got := strings.Join(d.Warnings, "\n")
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Fatalf("warnings %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClusterScopedObjectsHaveNoNamespaceInMessages(t *testing.T) {
	d := policy.Decision{Violations: []policy.Violation{{Rule: policy.RuleNamespaceLabel, Field: "metadata.labels", Message: "m"}}}
	// The API server sends a Namespace's own name as its review's namespace.
	if got := d.Message("Namespace", "t01-a", "t01-a"); !strings.HasPrefix(got, "tenantguard refused Namespace t01-a:") {
		t.Errorf("message %q", got)
	}
	if got := d.Message("Service", "t01-a", "web"); !strings.HasPrefix(got, "tenantguard refused Service t01-a/web:") {
		t.Errorf("message %q", got)
	}
	f := d.Findings("Tenant", "x", "project1")[0]
	if got := f.String(); !strings.HasPrefix(got, "Tenant project1: ") {
		t.Errorf("finding %q", got)
	}
}
