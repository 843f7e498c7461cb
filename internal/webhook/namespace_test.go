package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/policy"
	"github.com/tenantguard/tenantguard/internal/tenancy"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

// selfService is tenant "p1" (owner alice, prefix "p1-", namespaceQuota 2,
// listing namespace "p1"), decided by tenancy.DecideNamespace over plain
// values: the edge's input.
func selfService(existing ...string) webhook.NamespaceDecider {
	quota := int32(2)
	tn := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "p1"}, Spec: v1alpha1.TenantSpec{
		Owners:     []v1alpha1.Owner{{Kind: v1alpha1.OwnerUser, Name: "alice"}},
		Namespaces: []string{"p1"}, NamespaceQuota: &quota,
	}}
	return func(_ context.Context, u tenancy.User, ns *corev1.Namespace) (tenancy.NamespaceDecision, error) {
		return tenancy.DecideNamespace(u, ns.Name, ns.Labels, []*v1alpha1.Tenant{tn}, func(string) []string { return existing }), nil
	}
}

type counter map[string]int

func (c counter) Add(tenant string) { c[tenant]++ }

func namespaceReview(user string, groups []string, op admissionv1.Operation, ns *corev1.Namespace, dryRun bool) []byte {
	raw, _ := json.Marshal(ns)
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "uid-ns", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Namespace"}, Operation: op,
			Name: ns.Name, UserInfo: authenticationv1.UserInfo{Username: user, Groups: groups},
			Object: runtime.RawExtension{Raw: raw}, DryRun: &dryRun,
		},
	}
	b, _ := json.Marshal(ar)
	return b
}

// postTo sends body to h as the API server does.
func postTo(h http.Handler, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, webhook.MutatePath, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func ns(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// TestNamespaceHandler runs the namespace creation webhook behind the
// edge, as serve does, on reviews as the API server sends them.
func TestNamespaceHandler(t *testing.T) {
	refusals := counter{}
	engine := policy.NewEngine(config.Default())
	h := &webhook.NamespaceHandler{Decide: selfService("p1"), IsAdmin: engine.IsAdmin, Refusals: refusals}
	edge := webhook.NewEdge(&admission.Webhook{Handler: h}, webhook.EdgeLimits{}, 5*time.Second, nil)
	call := func(body []byte) *admissionv1.AdmissionResponse {
		t.Helper()
		rec := postTo(edge, body)
		var out admissionv1.AdmissionReview
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.Response == nil {
			t.Fatalf("not an AdmissionReview: HTTP %d %s", rec.Code, rec.Body.String())
		}
		if out.Response.UID != "uid-ns" {
			t.Errorf("answer for uid %q", out.Response.UID)
		}
		return out.Response
	}
	patchOf := func(r *admissionv1.AdmissionResponse) []map[string]any {
		t.Helper()
		if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("no JSON patch: %+v", r)
		}
		var ops []map[string]any
		if err := json.Unmarshal(r.Patch, &ops); err != nil {
			t.Fatalf("patch %s: %v", r.Patch, err)
		}
		return ops
	}

	t.Run("an owner's namespace with the prefix is labelled", func(t *testing.T) {
		r := call(namespaceReview("alice", nil, admissionv1.Create, ns("p1-dev", nil), false))
		if !r.Allowed {
			t.Fatalf("refused: %+v", r.Result)
		}
		ops := patchOf(r)
		want := map[string]any{v1alpha1.TenantLabel: "p1"}
		if len(ops) != 1 || ops[0]["op"] != "add" || ops[0]["path"] != "/metadata/labels" || !mapsEqual(ops[0]["value"], want) {
			t.Errorf("patch %s", r.Patch)
		}
		r = call(namespaceReview("alice", nil, admissionv1.Create, ns("p1-dev", map[string]string{"team": "x"}), false))
		if ops := patchOf(r); len(ops) != 1 || ops[0]["path"] != "/metadata/labels/tenantguard.dev~1tenant" || ops[0]["value"] != "p1" {
			t.Errorf("patch with other labels: %s", r.Patch)
		}
	})
	t.Run("already labelled for the tenant: no patch", func(t *testing.T) {
		r := call(namespaceReview("alice", nil, admissionv1.Create, ns("p1-dev", map[string]string{v1alpha1.TenantLabel: "p1"}), false))
		if !r.Allowed || r.Patch != nil {
			t.Errorf("%+v", r)
		}
	})
	t.Run("another prefix is refused, naming the prefix and the quota", func(t *testing.T) {
		r := call(namespaceReview("alice", nil, admissionv1.Create, ns("scratch", nil), false))
		if r.Allowed || r.Result.Code != http.StatusForbidden {
			t.Fatalf("admitted: %+v", r)
		}
		for _, want := range []string{"tenantguard refused Namespace scratch", `"p1-*"`, "namespaceQuota of 2"} {
			if !strings.Contains(r.Result.Message, want) {
				t.Errorf("message lacks %q: %s", want, r.Result.Message)
			}
		}
	})
	t.Run("a user who owns no tenant is left to RBAC", func(t *testing.T) {
		if r := call(namespaceReview("bob", nil, admissionv1.Create, ns("anything", nil), false)); !r.Allowed || r.Patch != nil {
			t.Errorf("%+v", r)
		}
	})
	t.Run("admins and the guard pass untouched", func(t *testing.T) {
		for _, u := range []struct {
			name   string
			groups []string
		}{{"alice", []string{"system:masters"}}, {"system:serviceaccount:tenantguard-system:tenantguard", nil}} {
			if r := call(namespaceReview(u.name, u.groups, admissionv1.Create, ns("scratch", nil), false)); !r.Allowed || r.Patch != nil {
				t.Errorf("%s: %+v", u.name, r)
			}
		}
	})
	t.Run("only creation is decided", func(t *testing.T) {
		if r := call(namespaceReview("alice", nil, admissionv1.Update, ns("scratch", nil), false)); !r.Allowed {
			t.Errorf("%+v", r)
		}
	})
	t.Run("generateName: refused for an owner, with what to do", func(t *testing.T) {
		gen := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{GenerateName: "p1-"}}
		r := call(namespaceReview("alice", nil, admissionv1.Create, gen, false))
		if r.Allowed || !strings.Contains(r.Result.Message, "set metadata.name") {
			t.Errorf("%+v", r)
		}
		if r := call(namespaceReview("bob", nil, admissionv1.Create, gen, false)); !r.Allowed {
			t.Errorf("generateName by a user who owns no tenant: %+v", r.Result)
		}
	})
	t.Run("refusals are counted for the tenant, dry runs not", func(t *testing.T) {
		clear(refusals)
		call(namespaceReview("alice", nil, admissionv1.Create, ns("scratch", nil), false))
		call(namespaceReview("alice", nil, admissionv1.Create, ns("scratch", nil), true))
		call(namespaceReview("alice", nil, admissionv1.Create, ns("p1-dev", nil), false))
		// "scratch" matches no prefix, so no tenant is named: only a
		// refusal over the quota is the tenant's.
		if len(refusals) != 0 {
			t.Errorf("refusals %v", refusals)
		}
		full := &webhook.NamespaceHandler{Decide: selfService("p1", "p1-a"), IsAdmin: engine.IsAdmin, Refusals: refusals}
		fullEdge := webhook.NewEdge(&admission.Webhook{Handler: full}, webhook.EdgeLimits{}, 5*time.Second, nil)
		for _, dry := range []bool{false, true} {
			rec := postTo(fullEdge, namespaceReview("alice", nil, admissionv1.Create, ns("p1-b", nil), dry))
			if !strings.Contains(rec.Body.String(), "2 of its namespaceQuota of 2") {
				t.Errorf("over the quota: %s", rec.Body.String())
			}
		}
		if refusals["p1"] != 1 {
			t.Errorf("refusals %v, want p1: 1", refusals)
		}
	})
	t.Run("an error is a refusal that says to retry", func(t *testing.T) {
		broken := &webhook.NamespaceHandler{Decide: func(context.Context, tenancy.User, *corev1.Namespace) (tenancy.NamespaceDecision, error) {
			return tenancy.NamespaceDecision{}, errors.New("list tenants: cache not ready")
		}}
		rec := postTo(webhook.NewEdge(&admission.Webhook{Handler: broken}, webhook.EdgeLimits{}, 5*time.Second, nil),
			namespaceReview("alice", nil, admissionv1.Create, ns("p1-x", nil), false))
		var out admissionv1.AdmissionReview
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		if out.Response == nil || out.Response.Allowed || !strings.Contains(out.Response.Result.Message, "cannot decide this namespace now: list tenants: cache not ready; retry") {
			t.Errorf("%s", rec.Body.String())
		}
	})
	t.Run("malformed reviews are refused, never a panic", func(t *testing.T) {
		for name, body := range map[string]string{
			"no uid":      `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"version":"v1","kind":"Namespace"},"operation":"CREATE","object":{"metadata":{"name":"p1-x"}}}}`,
			"no object":   `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"uid-ns","kind":{"version":"v1","kind":"Namespace"},"operation":"CREATE"}}`,
			"not a ns":    `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"uid-ns","kind":{"version":"v1","kind":"Namespace"},"operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}}}`,
			"bad labels":  `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"uid-ns","kind":{"version":"v1","kind":"Namespace"},"operation":"CREATE","object":{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x","labels":7}}}}`,
			"not JSON":    `{{{`,
			"empty":       ``,
			"null object": `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"uid-ns","kind":{"version":"v1","kind":"Namespace"},"operation":"CREATE","object":null}}`,
		} {
			rec := postTo(edge, []byte(body))
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || out.Response.Allowed {
				t.Errorf("%s: admitted or not a review: HTTP %d %s", name, rec.Code, rec.Body.String())
			}
		}
	})
}

func mapsEqual(got any, want map[string]any) bool {
	m, ok := got.(map[string]any)
	if !ok || len(m) != len(want) {
		return false
	}
	for k, v := range want {
		if m[k] != v {
			return false
		}
	}
	return true
}

// TestHandlerAdmitsTheLabelOfASelfServiceNamespace: the validating
// webhook lets a tenant owner's new namespace carry the tenant label the
// mutating webhook added, and nothing else the label rule refuses.
func TestHandlerAdmitsTheLabelOfASelfServiceNamespace(t *testing.T) {
	handler := func(decide webhook.NamespaceDecider) http.Handler {
		h := &webhook.Handler{Engine: policy.NewEngine(config.Default()), View: policy.NewSnapshot(), DecideNamespace: decide}
		return webhook.NewEdge(&admission.Webhook{Handler: h}, webhook.EdgeLimits{}, 5*time.Second, nil)
	}
	labelled := func(name, tenant string) *corev1.Namespace {
		return ns(name, map[string]string{v1alpha1.TenantLabel: tenant})
	}
	cases := []struct {
		name    string
		decide  webhook.NamespaceDecider
		user    string
		op      admissionv1.Operation
		ns      *corev1.Namespace
		allowed bool
		want    string
	}{
		{"the owner, its tenant's prefix", selfService("p1"), "alice", admissionv1.Create, labelled("p1-dev", "p1"), true, ""},
		{"the owner, a name without the prefix", selfService("p1"), "alice", admissionv1.Create, labelled("scratch", "p1"), false, "only cluster admins"},
		{"the owner, over the quota", selfService("p1", "p1-a"), "alice", admissionv1.Create, labelled("p1-dev", "p1"), false, "only cluster admins"},
		{"the owner, another tenant's label", selfService("p1"), "alice", admissionv1.Create, labelled("p1-dev", "p2"), false, "only cluster admins"},
		{"not an owner", selfService("p1"), "bob", admissionv1.Create, labelled("p1-dev", "p1"), false, "only cluster admins"},
		{"no decider", nil, "alice", admissionv1.Create, labelled("p1-dev", "p1"), false, "only cluster admins"},
		{"an update that sets the label", selfService("p1"), "alice", admissionv1.Update, labelled("p1-dev", "p1"), false, "only cluster admins"},
		{"the decision fails", func(context.Context, tenancy.User, *corev1.Namespace) (tenancy.NamespaceDecision, error) {
			return tenancy.NamespaceDecision{}, errors.New("list tenants: timeout")
		}, "alice", admissionv1.Create, labelled("p1-dev", "p1"), false, "cannot decide this namespace now: list tenants: timeout; retry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := namespaceReview(c.user, nil, c.op, c.ns, false)
			if c.op == admissionv1.Update {
				var ar admissionv1.AdmissionReview
				_ = json.Unmarshal(body, &ar)
				old, _ := json.Marshal(ns(c.ns.Name, nil))
				ar.Request.OldObject = runtime.RawExtension{Raw: old}
				body, _ = json.Marshal(ar)
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(postTo(handler(c.decide), body).Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("not a review: %v", err)
			}
			if out.Response.Allowed != c.allowed {
				t.Fatalf("allowed %v, want %v: %+v", out.Response.Allowed, c.allowed, out.Response.Result)
			}
			if c.want != "" && !strings.Contains(out.Response.Result.Message, c.want) {
				t.Errorf("message lacks %q: %s", c.want, out.Response.Result.Message)
			}
		})
	}
}
