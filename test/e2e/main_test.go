// Package e2e tests tenantguard end to end: a real kube-apiserver and etcd,
// the guard serving its webhook on loopback, and tenant users who are not
// cluster admins.
package e2e

import (
	"context"
	"fmt"
	"github.com/go-logr/logr"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/kinds"
)

// The shared control plane and guard of this package.
var (
	env   *devenv.Env
	admin client.Client
	cfg   config.Config
	guard *devenv.RunningGuard
)

// gracePeriod is short here so that release can be watched.
const gracePeriod = 3 * time.Second

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	crds, err := devenv.AllCRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var stop func() error
	env, stop, err = devenvtest.StartShared(devenv.Options{CRDs: crds})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	cfg = config.Default()
	cfg.ClaimGracePeriod.Duration = gracePeriod
	dir, err := os.MkdirTemp("", "tenantguard-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	guard, err = env.StartGuard(ctx, devenv.GuardOptions{Config: cfg, Dir: dir, AdoptInterval: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer guard.Stop()
	admin, err = client.New(env.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := admin.Create(ctx, tenantClusterRole()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// tenantRole is what a tenant's developers may do in their namespaces. (The
// built-in "edit" role is aggregated by kube-controller-manager, which this
// control plane does not run.)
const tenantRole = "tenant-developer"

func tenantClusterRole() *rbacv1.ClusterRole {
	all := []string{"*"}
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: tenantRole},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services", "pods", "pods/ephemeralcontainers", "configmaps", "replicationcontrollers", "podtemplates"}, Verbs: all},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets", "replicasets"}, Verbs: all},
			{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: all},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: all},
			{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"httproutes", "grpcroutes", "tlsroutes"}, Verbs: all},
		},
	}
}

// tenant creates a Tenant, its namespaces (labelled), and a user who may
// edit in them (the built-in "edit" role), and returns that user's client.
func tenant(t *testing.T, spec v1alpha1.TenantSpec, name string) client.Client {
	t.Helper()
	ctx := context.Background()
	tn := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if err := admin.Create(ctx, tn); err != nil {
		t.Fatalf("create tenant %s: %v", name, err)
	}
	group := name + "-devs"
	for _, ns := range spec.Namespaces {
		namespace(t, ns, name)
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "tenant-edit", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: tenantRole},
			Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: group}},
		}
		if err := admin.Create(ctx, rb); err != nil {
			t.Fatal(err)
		}
	}
	waitForTenant(t, name, spec.Namespaces)
	c := userClient(t, name+"-user", group)
	// RBAC takes a moment to reach the authorizer.
	for _, ns := range spec.Namespaces {
		eventually(t, func() error {
			return c.List(context.Background(), &corev1.ServiceList{}, client.InNamespace(ns))
		})
	}
	return c
}

// namespace creates a namespace, labelled for tenant unless it is "".
func namespace(t *testing.T, name, tenant string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if tenant != "" {
		ns.Labels = map[string]string{v1alpha1.TenantLabel: tenant}
	}
	// The tenant controller creates the namespaces a Tenant lists; one it
	// made already is fine.
	if err := admin.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// waitForTenant waits until the guard's view has the tenant and its
// namespaces (its informers run a moment behind the API server).
func waitForTenant(t *testing.T, name string, namespaces []string) {
	t.Helper()
	eventually(t, func() error {
		for _, ns := range namespaces {
			if tn := guard.Guard.View().TenantOf(ns); tn == nil || tn.Name != name || len(tn.Spec.Namespaces) == 0 {
				return fmt.Errorf("guard does not yet see namespace %s in tenant %s", ns, name)
			}
		}
		return nil
	})
}

func userClient(t *testing.T, user string, groups ...string) client.Client {
	t.Helper()
	cfg, err := env.AddUser(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	return clientFor(t, cfg)
}

func clientFor(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// eventually retries f until it succeeds, for at most a minute.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after a minute: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// refused checks that err is the guard's refusal and mentions every want.
func refused(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("request was admitted; want a refusal mentioning %q", want)
	}
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "tenantguard refused") {
		t.Fatalf("want the guard's refusal, got: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal lacks %q:\n%v", w, err)
		}
	}
}

func admitted(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("want admitted, got: %v", err)
	}
}
