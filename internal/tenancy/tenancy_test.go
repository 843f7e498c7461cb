package tenancy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

func quota(n int32) *int32 { return &n }

func tenant(name string, created int, spec v1alpha1.TenantSpec) *v1alpha1.Tenant {
	return &v1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Unix(int64(created), 0))},
		Spec:       spec,
	}
}

func TestDecideNamespace(t *testing.T) {
	alice := v1alpha1.Owner{Kind: v1alpha1.OwnerUser, Name: "alice"}
	devs := v1alpha1.Owner{Kind: v1alpha1.OwnerGroup, Name: "p2-devs"}
	ci := v1alpha1.Owner{Kind: v1alpha1.OwnerServiceAccount, Name: "deployer", Namespace: "ci"}
	tenants := []*v1alpha1.Tenant{
		tenant("p1", 1, v1alpha1.TenantSpec{Owners: []v1alpha1.Owner{alice, ci}, Namespaces: []string{"p1", "p1-later"}, NamespaceQuota: quota(4)}),
		tenant("p2", 2, v1alpha1.TenantSpec{Owners: []v1alpha1.Owner{devs}, NamespacePrefixes: []string{"team2-", "team2-x-"}, NamespaceQuota: quota(5)}),
		tenant("p3", 3, v1alpha1.TenantSpec{Owners: []v1alpha1.Owner{alice}}),
	}
	labelled := func(t string) []string {
		return map[string][]string{"p1": {"p1", "p1-dev"}, "p2": {"team2-a"}}[t]
	}
	tests := []struct {
		name    string
		user    User
		ns      string
		labels  map[string]string
		allowed bool
		tenant  string
		patch   string
		msg     []string
	}{
		{"not an owner: left to RBAC", User{Name: "bob"}, "anything", nil, true, "", "", nil},
		{"owner, own prefix, within quota", User{Name: "alice"}, "p1-test", nil, true, "p1",
			`[{"op":"add","path":"/metadata/labels","value":{"tenantguard.dev/tenant":"p1"}}]`, nil},
		{"existing labels", User{Name: "alice"}, "p1-test", map[string]string{"team": "x"}, true, "p1",
			`[{"op":"add","path":"/metadata/labels/tenantguard.dev~1tenant","value":"p1"}]`, nil},
		{"already labelled for the tenant", User{Name: "alice"}, "p1-test", map[string]string{v1alpha1.TenantLabel: "p1"}, true, "p1", "", nil},
		{"listed namespace, quota not counted", User{Name: "alice"}, "p1-later", nil, true, "p1", `[{"op":"add","path":"/metadata/labels","value":{"tenantguard.dev/tenant":"p1"}}]`, nil},
		{"service account owner", User{Name: "system:serviceaccount:ci:deployer"}, "p1-ci", nil, true, "p1", `[{"op":"add","path":"/metadata/labels","value":{"tenantguard.dev/tenant":"p1"}}]`, nil},
		{"group owner, longest prefix", User{Name: "carl", Groups: []string{"p2-devs"}}, "team2-x-y", nil, true, "p2", `[{"op":"add","path":"/metadata/labels","value":{"tenantguard.dev/tenant":"p2"}}]`, nil},
		{"prefix alone is no name", User{Name: "carl", Groups: []string{"p2-devs"}}, "team2-", nil, false, "", "", []string{`"team2-*"`}},
		{"other prefix refused", User{Name: "alice"}, "prod-db", nil, false, "", "",
			[]string{`"prod-db"`, `tenant "p1"`, `"p1-*"`, "3 of its namespaceQuota of 4", `tenant "p3"`, "no namespaceQuota"}},
		{"another tenant's prefix", User{Name: "alice"}, "team2-mine", nil, false, "", "", []string{`"p1-*"`}},
		{"label for a tenant not owned", User{Name: "alice"}, "p1-z", map[string]string{v1alpha1.TenantLabel: "p2"}, false, "", "", []string{`labelled for tenant "p2"`}},
		{"no namespaceQuota", User{Name: "alice"}, "p3-a", nil, false, "p3", "", []string{`tenant "p3"`, "no namespaceQuota", "spec.namespaceQuota"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := DecideNamespace(tc.user, tc.ns, tc.labels, tenants, labelled)
			if d.Allowed != tc.allowed || d.Tenant != tc.tenant || string(d.Patch) != tc.patch {
				t.Errorf("got allowed=%v tenant=%q patch=%s (%s), want %v %q %s", d.Allowed, d.Tenant, d.Patch, d.Message, tc.allowed, tc.tenant, tc.patch)
			}
			if d.Allowed != (d.Message == "") {
				t.Errorf("allowed=%v with message %q", d.Allowed, d.Message)
			}
			for _, m := range tc.msg {
				if !strings.Contains(d.Message, m) {
					t.Errorf("message %q lacks %s", d.Message, m)
				}
			}
		})
	}
}

func TestDecideNamespaceQuotaFull(t *testing.T) {
	tn := tenant("p1", 1, v1alpha1.TenantSpec{Owners: []v1alpha1.Owner{{Kind: v1alpha1.OwnerUser, Name: "alice"}}, Namespaces: []string{"p1"}, NamespaceQuota: quota(2)})
	d := DecideNamespace(User{Name: "alice"}, "p1-c", nil, []*v1alpha1.Tenant{tn}, func(string) []string { return []string{"p1", "p1-a"} })
	if d.Allowed || !strings.Contains(d.Message, "2 of its namespaceQuota of 2") {
		t.Errorf("full quota: %+v", d)
	}
	// A Tenant being deleted grants nothing.
	now := metav1.Now()
	tn.DeletionTimestamp = &now
	if d := DecideNamespace(User{Name: "alice"}, "p1-c", nil, []*v1alpha1.Tenant{tn}, func(string) []string { return nil }); !d.Allowed || d.Tenant != "" {
		t.Errorf("deleted tenant: %+v", d)
	}
}

func TestLabelPatchApplies(t *testing.T) {
	for _, labels := range []map[string]string{nil, {"a": "b"}} {
		var ops []map[string]any
		if err := json.Unmarshal(labelPatch(labels, "t"), &ops); err != nil || len(ops) != 1 || ops[0]["op"] != "add" {
			t.Errorf("labels %v: %v %v", labels, ops, err)
		}
	}
}

func TestConflictsAndHolder(t *testing.T) {
	a := tenant("a", 1, v1alpha1.TenantSpec{Namespaces: []string{"shared", "a-only"}})
	b := tenant("b", 2, v1alpha1.TenantSpec{Namespaces: []string{"shared", "b-only"}})
	c := tenant("c", 3, v1alpha1.TenantSpec{Namespaces: []string{"a-self", "orphan", "free"}})
	all := []*v1alpha1.Tenant{a, b, c}
	labels := map[string]string{"shared": "a", "a-self": "a", "orphan": "deleted-tenant"}
	labelOf := func(ns string) string { return labels[ns] }

	got := Conflicts(b, all, labelOf)
	if len(got) != 1 || got[0].Namespace != "shared" || got[0].Tenant != "a" || got[0].Field != "spec.namespaces[0]" ||
		!strings.Contains(got[0].Message, `already belongs to tenant "a"`) {
		t.Errorf("b's conflicts = %+v", got)
	}
	got = Conflicts(c, all, labelOf)
	if len(got) != 1 || got[0].Namespace != "a-self" || got[0].Tenant != "a" {
		t.Errorf("c's conflicts = %+v (a namespace labelled for an existing tenant conflicts; one of a deleted tenant does not)", got)
	}
	// Admission refuses the second either way; the controller gives a
	// doubly listed namespace to the first.
	if got := Conflicts(a, all, labelOf); len(got) != 1 || got[0].Tenant != "b" {
		t.Errorf("a's conflicts = %+v", got)
	}
	for _, tc := range []struct{ ns, label, want string }{
		{"shared", "", "a"}, {"shared", "b", "b"}, {"shared", "gone", "a"},
		{"a-self", "a", "a"}, {"orphan", "deleted-tenant", "c"}, {"nowhere", "", ""},
	} {
		if got := Holder(tc.ns, tc.label, all); got != tc.want {
			t.Errorf("Holder(%s, label %q) = %q, want %q", tc.ns, tc.label, got, tc.want)
		}
	}
}

func TestNamespaces(t *testing.T) {
	tn := tenant("t", 1, v1alpha1.TenantSpec{Namespaces: []string{"t-b", "t-a"}})
	got := Namespaces(tn, []string{"t-a", "t-self", "t-old"}, func(ns string) bool { return ns == "t-old" })
	if strings.Join(got, ",") != "t-a,t-b,t-self" {
		t.Errorf("Namespaces = %v", got)
	}
}

func TestNamespaceObjects(t *testing.T) {
	tn := tenant("t", 1, v1alpha1.TenantSpec{
		Owners: []v1alpha1.Owner{
			{Kind: v1alpha1.OwnerUser, Name: "u"}, {Kind: v1alpha1.OwnerGroup, Name: "g"},
			{Kind: v1alpha1.OwnerServiceAccount, Name: "sa", Namespace: "ci"},
		},
		OwnerRole: "custom",
		Resources: v1alpha1.ResourceDefaults{
			Quota: &corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("3")}},
			LimitRange: &corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
				Type: corev1.LimitTypeContainer,
				Max:  corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
				Min:  corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")},
			}}},
			NetworkIsolation:         v1alpha1.NetworkIsolationTenant,
			AllowedIngressNamespaces: []string{"monitoring", "ingress"},
		},
	})
	objs := NamespaceObjects(tn, "t-a", Options{IngressNamespaces: []string{"ingress"}, IngressCIDRs: []string{"10.1.0.0/24"}})
	if len(objs) != 4 {
		t.Fatalf("%d objects, want 4", len(objs))
	}
	for _, o := range objs {
		if o.GetNamespace() != "t-a" || o.GetLabels()[ManagedLabel] != "t" {
			t.Errorf("%T %s/%s labels %v", o, o.GetNamespace(), o.GetName(), o.GetLabels())
		}
	}
	rb := objs[0].(*rbacv1.RoleBinding)
	if rb.RoleRef.Name != "custom" || len(rb.Subjects) != 3 || rb.Subjects[2].Namespace != "ci" || rb.Subjects[2].APIGroup != "" || rb.Subjects[0].APIGroup != rbacv1.GroupName {
		t.Errorf("binding %+v", rb)
	}
	lr := objs[2].(*corev1.LimitRange).Spec.Limits[0]
	if d := lr.Default[corev1.ResourceMemory]; d.String() != "1Gi" {
		t.Errorf("default limit = %v, want the max as the API server defaults it", lr.Default)
	}
	if r := lr.DefaultRequest[corev1.ResourceCPU]; r.String() != "10m" {
		t.Errorf("default request = %v, want the min", lr.DefaultRequest)
	}
	if tn.Spec.Resources.LimitRange.Limits[0].Default != nil {
		t.Error("rendering changed the Tenant")
	}
	np := objs[3].(*networkingv1.NetworkPolicy)
	if vals := np.Spec.Ingress[0].From[1].NamespaceSelector.MatchExpressions[0].Values; strings.Join(vals, ",") != "ingress,monitoring" {
		t.Errorf("admitted namespaces = %v", vals)
	}
	if from := np.Spec.Ingress[0].From; len(from) != 3 || from[2].IPBlock == nil || from[2].IPBlock.CIDR != "10.1.0.0/24" {
		t.Errorf("admitted peers = %+v", from)
	}

	if objs := NamespaceObjects(tenant("bare", 1, v1alpha1.TenantSpec{}), "x", Options{}); len(objs) != 0 {
		t.Errorf("a bare tenant gets %d objects", len(objs))
	}
}

func TestClusterObjects(t *testing.T) {
	owners := []v1alpha1.Owner{{Kind: v1alpha1.OwnerUser, Name: "u"}}
	if n := len(ClusterObjects(tenant("t", 1, v1alpha1.TenantSpec{Owners: owners}))); n != 2 {
		t.Errorf("%d cluster objects without a namespace quota, want 2", n)
	}
	objs := ClusterObjects(tenant("t", 1, v1alpha1.TenantSpec{Owners: owners, NamespaceQuota: quota(1)}))
	if len(objs) != 3 || objs[2].(*rbacv1.ClusterRoleBinding).RoleRef.Name != NamespaceCreatorRole {
		t.Errorf("cluster objects = %v", objs)
	}
	role := objs[0].(*rbacv1.ClusterRole)
	if r := role.Rules[0]; len(r.ResourceNames) != 1 || r.ResourceNames[0] != "t" || r.Resources[0] != "tenants" {
		t.Errorf("viewer rule = %+v", r)
	}
	if len(ClusterObjects(tenant("t", 1, v1alpha1.TenantSpec{}))) != 0 {
		t.Error("a tenant without owners gets cluster objects")
	}
}

// TestTenantAdminRoleIsNamespaced guards the promise that the owners' role
// writes nothing that reaches beyond the namespace or loosens the Tenant.
func TestTenantAdminRoleIsNamespaced(t *testing.T) {
	forbidden := map[string]bool{
		"namespaces": true, "resourcequotas": true, "limitranges": true, "networkpolicies": true,
		"clusterroles": true, "clusterrolebindings": true, "tenants": true, "hostclaims": true,
		"nodes": true, "persistentvolumes": true, "tcproutes": true, "udproutes": true, "referencegrants": true,
	}
	for _, r := range TenantAdminClusterRole().Rules {
		writes := false
		for _, v := range r.Verbs {
			writes = writes || (v != "get" && v != "list" && v != "watch")
		}
		for _, res := range r.Resources {
			if res == "*" || (writes && forbidden[res]) {
				t.Errorf("owners may %v %s", r.Verbs, res)
			}
		}
	}
}
