package webhook

import (
	"context"
	"fmt"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tenantguard/tenantguard/internal/policy"
	"github.com/tenantguard/tenantguard/internal/tenancy"
)

// NamespaceDecider decides a namespace created by u, who is not a cluster
// admin (controller.DecideNamespace over the guard's cache).
type NamespaceDecider func(ctx context.Context, u tenancy.User, ns *corev1.Namespace) (tenancy.NamespaceDecision, error)

// RuleNamespaceCreate names refusals of namespace creation in the
// decisions metric.
const RuleNamespaceCreate policy.Rule = "namespace-create"

// NamespaceHandler answers the mutating webhook for namespace creation
// (namespaces-create.tenantguard.dev, at MutatePath): a tenant owner may
// create a namespace only with a prefix of one of its tenants and within
// that tenant's namespaceQuota, and the namespace is labelled for the
// tenant with a JSON patch. A user who owns no tenant is left to RBAC. The
// rule is tenancy.DecideNamespace; this is only its edge.
type NamespaceHandler struct {
	// Decide is required.
	Decide NamespaceDecider
	// IsAdmin tells cluster admins and the guard, whose requests are
	// admitted untouched. The configuration's match conditions keep them
	// away already; this holds when a configuration does not.
	IsAdmin func(policy.User) bool
	// WaitReady blocks until Decide's cache reflects the cluster, or ctx
	// ends (optional).
	WaitReady func(ctx context.Context) error
	Metrics   *Metrics
	// Refusals, if set, counts refusals per tenant (status.refusals).
	Refusals interface{ Add(tenant string) }
}

var _ admission.Handler = (*NamespaceHandler)(nil)

// Handle decides one namespace creation.
func (h *NamespaceHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	var v verdict
	resp := h.handle(ctx, req, &v)
	v.denied = !resp.Allowed
	if v.denied && v.rule != "" && h.Refusals != nil && v.tenant != "" && !(req.DryRun != nil && *req.DryRun) {
		h.Refusals.Add(v.tenant)
	}
	h.Metrics.observe(req, v, time.Since(start))
	return resp
}

func (h *NamespaceHandler) handle(ctx context.Context, req admission.Request, v *verdict) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	if req.Kind.Group != "" || req.Kind.Kind != "Namespace" {
		// The configuration sends only namespaces here.
		return admission.Allowed("").WithWarnings(fmt.Sprintf("tenantguard labels only namespaces at %s, not %s", MutatePath, req.Kind))
	}
	user := policy.User{Name: req.UserInfo.Username, Groups: req.UserInfo.Groups}
	if h.IsAdmin != nil && h.IsAdmin(user) {
		return admission.Allowed("")
	}
	if len(req.Object.Raw) == 0 {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("admission request for Namespace %s carries no object", req.Name))
	}
	obj, err := decodeObject(req.Object.Raw, schema.GroupVersionKind{Version: req.Kind.Version, Kind: req.Kind.Kind})
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return admission.Denied(fmt.Sprintf("the request is for a Namespace, but its object is %T; send a Namespace", obj))
	}
	if h.Decide == nil {
		return admission.Denied("tenantguard cannot decide this namespace now: no namespace decider is configured; retry")
	}
	if h.WaitReady != nil {
		if err := h.WaitReady(ctx); err != nil {
			return admission.Denied(fmt.Sprintf("tenantguard cannot decide this namespace now: it is starting and has not read the cluster yet (%v); retry", err))
		}
	}
	u := tenancy.User{Name: user.Name, Groups: user.Groups}
	generated := ns.Name == "" && ns.GenerateName != ""
	if generated {
		// The API server generates the name after the mutating webhooks:
		// decide on the prefix alone, which tells whether the user owns a
		// tenant at all.
		ns = ns.DeepCopy()
		ns.Name = ns.GenerateName
	}
	d, err := h.Decide(ctx, u, ns)
	if err != nil {
		return admission.Denied(fmt.Sprintf("tenantguard cannot decide this namespace now: %v; retry", err))
	}
	v.tenant = d.Tenant
	if d.Allowed && d.Tenant == "" {
		return admission.Allowed("") // the user owns no tenant: RBAC decides
	}
	v.rule = RuleNamespaceCreate
	if generated {
		return admission.Denied(fmt.Sprintf("tenantguard refused Namespace with generateName %q:\n- the namespaces a tenant owner creates are confined to the tenant's prefixes and namespaceQuota, which needs the name, and the API server generates it only after this check; set metadata.name instead (say %q)",
			ns.GenerateName, ns.GenerateName+"1"))
	}
	if !d.Allowed {
		return admission.Denied(fmt.Sprintf("tenantguard refused Namespace %s:\n- %s", ns.Name, d.Message))
	}
	v.rule = ""
	if len(d.Patch) == 0 {
		return admission.Allowed("")
	}
	patch := admissionv1.PatchTypeJSONPatch
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed: true, Patch: d.Patch, PatchType: &patch,
	}}
}
