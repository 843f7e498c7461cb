// Package audit finds the violations a cluster already holds: objects
// created before the guard was installed, or while it was not asked. It
// replays the cluster's objects, oldest first, through the same policy
// engine the webhook uses, so the first user of a host owns it and every
// later user is a finding, as the webhook would have decided.
package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// Result is the outcome of an audit.
type Result struct {
	Findings []policy.Finding `json:"findings"`
	// Objects counts the objects judged.
	Objects int `json:"objects"`
	// Skipped lists the kinds the cluster does not serve.
	Skipped []string `json:"skippedKinds,omitempty"`

	// hostFindings keys the host-ownership findings, so that sharedHosts
	// does not report one twice.
	hostFindings map[string]bool
}

// kind is one listed kind.
type kind struct {
	gvk     schema.GroupVersionKind
	newList func() client.ObjectList
}

func k(gv schema.GroupVersion, name string, newList func() client.ObjectList) kind {
	return kind{gvk: gv.WithKind(name), newList: newList}
}

// judged are the kinds the audit replays, besides Tenants, Namespaces and
// HostClaims, which make up the state.
var judged = []kind{
	k(networkingv1.SchemeGroupVersion, "Ingress", func() client.ObjectList { return &networkingv1.IngressList{} }),
	k(kinds.GatewayV1, "HTTPRoute", func() client.ObjectList { return &gatewayv1.HTTPRouteList{} }),
	k(kinds.GatewayV1, "GRPCRoute", func() client.ObjectList { return &gatewayv1.GRPCRouteList{} }),
	k(kinds.GatewayV1, "TLSRoute", func() client.ObjectList { return &gatewayv1.TLSRouteList{} }),
	k(kinds.GatewayV1, "TCPRoute", func() client.ObjectList { return &gatewayv1.TCPRouteList{} }),
	k(kinds.GatewayV1, "UDPRoute", func() client.ObjectList { return &gatewayv1.UDPRouteList{} }),
	k(kinds.GatewayV1, "Gateway", func() client.ObjectList { return &gatewayv1.GatewayList{} }),
	k(kinds.GatewayV1, "ListenerSet", func() client.ObjectList { return &gatewayv1.ListenerSetList{} }),
	k(corev1.SchemeGroupVersion, "Service", func() client.ObjectList { return &corev1.ServiceList{} }),
	k(corev1.SchemeGroupVersion, "Pod", func() client.ObjectList { return &corev1.PodList{} }),
	k(corev1.SchemeGroupVersion, "ReplicationController", func() client.ObjectList { return &corev1.ReplicationControllerList{} }),
	k(appsv1.SchemeGroupVersion, "Deployment", func() client.ObjectList { return &appsv1.DeploymentList{} }),
	k(appsv1.SchemeGroupVersion, "StatefulSet", func() client.ObjectList { return &appsv1.StatefulSetList{} }),
	k(appsv1.SchemeGroupVersion, "DaemonSet", func() client.ObjectList { return &appsv1.DaemonSetList{} }),
	k(appsv1.SchemeGroupVersion, "ReplicaSet", func() client.ObjectList { return &appsv1.ReplicaSetList{} }),
	k(batchv1.SchemeGroupVersion, "Job", func() client.ObjectList { return &batchv1.JobList{} }),
	k(batchv1.SchemeGroupVersion, "CronJob", func() client.ObjectList { return &batchv1.CronJobList{} }),
}

// Run audits the cluster that c reads.
func Run(ctx context.Context, c client.Reader, engine *policy.Engine) (Result, error) {
	var res Result
	view := policy.NewSnapshot()

	tenants := &v1alpha1.TenantList{}
	if err := c.List(ctx, tenants); err != nil {
		return res, fmt.Errorf("list tenants (is tenantguard installed?): %w", err)
	}
	for i := range tenants.Items {
		t := &tenants.Items[i]
		d := engine.Evaluate(policy.Request{Operation: policy.Create, Object: t, Kind: v1alpha1.GroupVersion.WithKind("Tenant"), Name: t.Name}, view)
		res.add("Tenant", "", t.Name, d)
		view.Record(engine, policy.Request{Object: t})
	}
	namespaces := &corev1.NamespaceList{}
	if err := c.List(ctx, namespaces); err != nil {
		return res, fmt.Errorf("list namespaces: %w", err)
	}
	for i := range namespaces.Items {
		view.SetNamespace(namespaces.Items[i].Name, namespaces.Items[i].Labels)
	}
	claims := &v1alpha1.HostClaimList{}
	if err := c.List(ctx, claims); err != nil {
		return res, fmt.Errorf("list host claims: %w", err)
	}
	for i := range claims.Items {
		view.Record(engine, policy.Request{Object: &claims.Items[i]})
	}
	res.Findings = append(res.Findings, overlappingClaims(claims.Items)...)

	type item struct {
		gvk schema.GroupVersionKind
		obj client.Object
	}
	var items []item
	for _, kd := range judged {
		list := kd.newList()
		if err := c.List(ctx, list); err != nil {
			if meta.IsNoMatchError(err) {
				res.Skipped = append(res.Skipped, kd.gvk.Kind)
				continue
			}
			return res, fmt.Errorf("list %s: %w", kd.gvk.Kind, err)
		}
		objs, err := meta.ExtractList(list)
		if err != nil {
			return res, err
		}
		for _, o := range objs {
			obj := o.(client.Object)
			// An object a workload controller made (a ReplicaSet of a
			// Deployment, a Pod of a ReplicaSet) repeats its owner's
			// findings. Objects of other controllers (operators) are audited.
			if ownedByAuditedWorkload(obj) {
				continue
			}
			items = append(items, item{kd.gvk, obj})
		}
	}
	slices.SortStableFunc(items, func(a, b item) int {
		return cmp.Or(a.obj.GetCreationTimestamp().Compare(b.obj.GetCreationTimestamp().Time),
			cmp.Compare(a.obj.GetNamespace(), b.obj.GetNamespace()), cmp.Compare(a.obj.GetName(), b.obj.GetName()))
	})
	served := hosts.NewIndex()
	for _, it := range items {
		req := policy.Request{Operation: policy.Create, Object: it.obj, Kind: it.gvk, Namespace: it.obj.GetNamespace(), Name: it.obj.GetName()}
		res.Objects++
		res.add(it.gvk.Kind, req.Namespace, req.Name, view.Record(engine, req))
		res.sharedHosts(engine, served, it.gvk, it.obj)
	}
	return res, nil
}

// sharedHosts reports the hosts obj serves that an older object of another
// namespace serves too, whatever the claims say and in every namespace,
// excluded ones included: the cluster's traffic, not its records, is what
// two namespaces must not share. served holds the objects seen so far
// (all older, as the audit goes oldest first); obj is added to it.
func (r *Result) sharedHosts(engine *policy.Engine, served *hosts.Index, gvk schema.GroupVersionKind, obj client.Object) {
	ns := obj.GetNamespace()
	uses, _ := engine.HostUses(obj, ns)
	for _, u := range uses {
		for _, o := range served.Overlapping(u.Name, 0, func(o hosts.Owner) bool { return o.Namespace != ns }) {
			if r.hostFindings[hostFindingKey(gvk.Kind, ns, obj.GetName(), u.Name.String())] {
				continue
			}
			what := fmt.Sprintf("host %q is also served from namespace %q, by an older object", u.Name, o.Namespace)
			if o.Name != u.Name {
				what = fmt.Sprintf("host %q overlaps %q, which an older object serves from namespace %q", u.Name, o.Name, o.Namespace)
			}
			r.addFinding(policy.Finding{Kind: gvk.Kind, Namespace: ns, Name: obj.GetName(), Violation: policy.Violation{
				Rule: policy.RuleHostOwnership, Field: "spec", Value: u.Name.String(),
				Message: what + "; two namespaces serve one host, and the ingress controller sends its traffic to one of them",
				Instead: "remove the host from the newer object, or move both into one namespace.",
			}})
		}
	}
	for i := range uses {
		uses[i].Created = obj.GetCreationTimestamp().Time
	}
	served.SetUses(hosts.ObjectKey{Namespace: ns, Group: gvk.Group, Kind: gvk.Kind, Name: obj.GetName()}, uses)
}

// overlappingClaims reports claims of different owners whose names
// overlap: the guard's claimer never leaves two, but an admin can write
// them by hand. Each pair is reported once, on the newer claim.
func overlappingClaims(claims []v1alpha1.HostClaim) []policy.Finding {
	ix := hosts.NewIndex()
	byName := map[string]*v1alpha1.HostClaim{}
	for i := range claims {
		o := hosts.OwnerOf(&claims[i])
		ix.SetOwner(o)
		byName[hosts.ClaimName(o.Name)] = &claims[i]
	}
	var out []policy.Finding
	for i := range claims {
		a := &claims[i]
		oa := hosts.OwnerOf(a)
		others := ix.Overlapping(oa.Name, 0, func(o hosts.Owner) bool { return o.Name != oa.Name && hosts.Conflicts(o, oa) })
		for _, ob := range others {
			b := byName[hosts.ClaimName(ob.Name)]
			if b == nil {
				continue
			}
			newer, err := resourceversion.CompareResourceVersion(hosts.CreateRevision(a), hosts.CreateRevision(b))
			if err != nil || newer <= 0 {
				continue
			}
			out = append(out, policy.Finding{Kind: "HostClaim", Name: a.Name, Violation: policy.Violation{
				Rule: policy.RuleHostOwnership, Field: "spec.host", Value: oa.Name.String(),
				Message: fmt.Sprintf("claim of %q (namespace %q, tenant %q) overlaps the older claim %s of %q (namespace %q, tenant %q)",
					oa.Name, oa.Namespace, oa.Tenant, b.Name, ob.Name, ob.Namespace, ob.Tenant),
				Instead: "delete the newer claim, or the Ingress or route that made it; only one owner may serve these names.",
			}})
		}
	}
	return out
}

func (r *Result) add(kind, namespace, name string, d policy.Decision) {
	for _, f := range d.Findings(kind, namespace, name) {
		r.addFinding(f)
	}
}

func (r *Result) addFinding(f policy.Finding) {
	if f.Rule == policy.RuleHostOwnership {
		if r.hostFindings == nil {
			r.hostFindings = map[string]bool{}
		}
		r.hostFindings[hostFindingKey(f.Kind, f.Namespace, f.Name, f.Value)] = true
	}
	r.Findings = append(r.Findings, f)
}

func hostFindingKey(kind, namespace, name, host string) string {
	return kind + "\x00" + namespace + "\x00" + name + "\x00" + host
}

// workloads are the audited kinds whose controllers make pods or other
// workloads from a template the audit already judges.
var workloads = map[schema.GroupKind]bool{
	{Group: "apps", Kind: "Deployment"}: true, {Group: "apps", Kind: "ReplicaSet"}: true,
	{Group: "apps", Kind: "StatefulSet"}: true, {Group: "apps", Kind: "DaemonSet"}: true,
	{Group: "batch", Kind: "Job"}: true, {Group: "batch", Kind: "CronJob"}: true,
	{Group: "", Kind: "ReplicationController"}: true,
}

func ownedByAuditedWorkload(obj client.Object) bool {
	for _, ref := range obj.GetOwnerReferences() {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err == nil && ref.Controller != nil && *ref.Controller && workloads[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}] {
			return true
		}
	}
	return false
}
