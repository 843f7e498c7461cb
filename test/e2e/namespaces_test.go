package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/tenancy"
)

// TestSelfServiceNamespaces: the owners of a Tenant with a namespaceQuota
// create namespaces themselves, confined by the namespace creation webhook
// to the tenant's prefix and quota and labelled for the tenant; the tenant
// controller binds them there. Users who own no tenant get nothing, and
// admins are not affected.
func TestSelfServiceNamespaces(t *testing.T) {
	ctx := context.Background()
	// The roles install renders; the controller binds owners to them.
	for _, r := range []*rbacv1.ClusterRole{tenancy.TenantAdminClusterRole(), tenancy.NamespaceCreatorClusterRole()} {
		if err := admin.Create(ctx, r); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	quota := int32(3)
	if err := admin.Create(ctx, &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "selfserve"}, Spec: v1alpha1.TenantSpec{
		Owners:         []v1alpha1.Owner{{Kind: v1alpha1.OwnerGroup, Name: "selfserve-owners"}},
		Namespaces:     []string{"selfserve"},
		NamespaceQuota: &quota,
	}}); err != nil {
		t.Fatal(err)
	}
	owner := userClient(t, "selfserve-owner", "selfserve-owners")
	newNamespace := func(name string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}

	// The controller binds the owners to the namespace creator role, and
	// the API server calls the namespace creation webhook: a dry run comes
	// back labelled.
	eventually(t, func() error {
		ns := newNamespace("selfserve-extra")
		if err := owner.Create(ctx, ns, client.DryRunAll); err != nil {
			return err
		}
		if got := ns.Labels[v1alpha1.TenantLabel]; got != "selfserve" {
			return fmt.Errorf("dry run admitted, tenant label %q", got)
		}
		return nil
	})

	// Admitted and labelled for the tenant.
	admitted(t, owner.Create(ctx, newNamespace("selfserve-extra")))
	stored := &corev1.Namespace{}
	if err := admin.Get(ctx, client.ObjectKey{Name: "selfserve-extra"}, stored); err != nil {
		t.Fatal(err)
	}
	if got := stored.Labels[v1alpha1.TenantLabel]; got != "selfserve" {
		t.Fatalf("namespace selfserve-extra has tenant label %q, want selfserve", got)
	}
	// The controller binds the owners in it.
	eventually(t, func() error {
		return owner.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "selfserve-extra"}})
	})

	// Another prefix: refused, naming the allowed prefix and the quota.
	refused(t, owner.Create(ctx, newNamespace("scratch-selfserve")), `"selfserve-*"`, "namespaceQuota of 3")

	// The third namespace fills the quota ("selfserve" is listed); once the
	// guard has seen it, a fourth is refused.
	admitted(t, owner.Create(ctx, newNamespace("selfserve-two")))
	waitForTenant(t, "selfserve", []string{"selfserve", "selfserve-extra", "selfserve-two"})
	refused(t, owner.Create(ctx, newNamespace("selfserve-three")), "3 of its namespaceQuota of 3", "spec.namespaceQuota")

	// An owner may not label a namespace for its tenant by hand, beyond
	// what the webhook gives either.
	over := newNamespace("selfserve-four")
	over.Labels = map[string]string{v1alpha1.TenantLabel: "selfserve"}
	refused(t, owner.Create(ctx, over), "namespaceQuota of 3")

	// A user who owns no tenant has no right to create namespaces: RBAC
	// refuses before any webhook.
	stranger := userClient(t, "selfserve-stranger", "selfserve-strangers")
	err := stranger.Create(ctx, newNamespace("selfserve-stranger"))
	if !apierrors.IsForbidden(err) || strings.Contains(err.Error(), "tenantguard") {
		t.Fatalf("a user who owns no tenant creates a namespace: want RBAC's refusal, got %v", err)
	}

	// An admin is not affected: any name, no label added.
	for _, name := range []string{"selfserve-by-admin", "admin-made-selfserve"} {
		admitted(t, admin.Create(ctx, newNamespace(name)))
		got := &corev1.Namespace{}
		if err := admin.Get(ctx, client.ObjectKey{Name: name}, got); err != nil {
			t.Fatal(err)
		}
		if l, ok := got.Labels[v1alpha1.TenantLabel]; ok {
			t.Errorf("an admin's namespace %s was labelled for tenant %q", name, l)
		}
	}
}
