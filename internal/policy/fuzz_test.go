package policy_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// FuzzEvaluate feeds every rule arbitrary objects of every guarded kind:
// the engine must decide, never panic.
func FuzzEvaluate(f *testing.F) {
	for _, s := range []string{
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"p1"},"spec":{"type":"LoadBalancer","externalIPs":["1.2.3.4"]}}`,
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"p1"},"spec":{"type":"ExternalName","externalName":"x..y"}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"p1-prod"},"spec":{"containers":[{"image":"nginx"}],"ephemeralContainers":[{"image":"::"}],"volumes":[{"name":"v","image":{"reference":""}}]}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"namespace":"p1"},"spec":{"template":{"spec":{"initContainers":[{"image":"a/b@sha256:00"}]}}}}`,
		`{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"namespace":"p2"},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}}}`,
		`{"apiVersion":"v1","kind":"ReplicationController","metadata":{"namespace":"p1"},"spec":{}}`,
		`{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"i","namespace":"p1","annotations":{"nginx.ingress.kubernetes.io/server-alias":", ,*.,a"}},"spec":{"defaultBackend":{},"tls":[{}],"rules":[{"host":"*.p1.example.com","http":{"paths":[{"path":""}]}},{}]}}`,
		`{"apiVersion":"gateway.networking.k8s.io/v1","kind":"HTTPRoute","metadata":{"name":"r","namespace":"s1"},"spec":{"hostnames":["*.strict.example.com","*"],"rules":[{"matches":[{"path":{"value":"/a/"}}]}]}}`,
		`{"apiVersion":"gateway.networking.k8s.io/v1","kind":"TLSRoute","metadata":{"name":"r","namespace":"default"},"spec":{"hostnames":[]}}`,
		`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"p1","labels":{"tenantguard.dev/tenant":""}}}`,
		`{"apiVersion":"tenantguard.dev/v1alpha1","kind":"Tenant","metadata":{"name":"t"},"spec":{"namespaces":["p1"],"images":{"allowedRepositories":["**"]},"ingress":{"allowedHostPatterns":["(("]}}}`,
		`{"apiVersion":"tenantguard.dev/v1alpha1","kind":"Tenant","metadata":{"name":"t"},"spec":{"ingress":{"allowedHostPatterns":["",".*","a)|(.*","[a-z)","API\\.x","(?i)A"],"allowedClasses":[""]},"images":{"allowedRepositories":["","docker.io/library/ubuntu:20.14","a.io/b@sha256:00","r.io:443/p/*"]},"registry":{"repositories":[{"pattern":"p/a:v1"}],"immutableTags":[""," "]}}}`,
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"p1","annotations":{"service.beta.kubernetes.io/azure-load-balancer-internal":"true","service.beta.kubernetes.io/azure-pls-create":"TRUE","service.beta.kubernetes.io/azure-pip-name":"","service.beta.kubernetes.io/azure-load-balancer-ipv4":"[::1]"}},"spec":{"type":"LoadBalancer"}}`,
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"p2"},"spec":{"type":"ExternalName","externalName":"kubernetes.default.svc.cluster.local."}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"p1"},"spec":{"containers":[{"image":"myacr.azurecr.io:443/project1/app"},{"image":"[::1]:5000/project1/app"},{"image":"[::1]/a"}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, gvk, err := kinds.Decode(data)
		if err != nil {
			return
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return
		}
		view := fixture(t)
		engine := policy.NewEngine(config.Default())
		req := policy.Request{Operation: policy.Create, Object: obj, Kind: *gvk, Namespace: m.GetNamespace(), Name: m.GetName(), User: tenantUser}
		d := view.Apply(engine, req)
		for _, v := range d.Violations {
			if v.Rule == "" || v.Message == "" {
				t.Fatalf("violation without rule or message: %+v", v)
			}
		}
		req.Operation, req.OldObject = policy.Update, obj.DeepCopyObject()
		engine.Evaluate(req, view)
	})
}
