// Package cluster tests the guard as a cluster runs it: the built binary as
// two `serve` processes with their own flag defaults, under the service
// account and RBAC that `install` renders, registered with install's webhook
// configuration (its URL pointed at a loopback round robin that stands for
// the Service), against a real kube-apiserver and etcd. Faults are real too:
// a replica killed with SIGKILL, the API server restarted, an outage.
//
// After each test the invariants of host ownership are checked: every
// admitted object's hosts are claimed by its namespace, no host (and no
// overlapping pair) is served from two namespaces, and every claim is used
// or released after the grace period.
package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/kinds"
)

var (
	env    *devenv.Env
	admin  client.Client
	guards *devenv.ProcGuards
	cfg    config.Config
	// adoptStart is when the guards started over the preexisting
	// Ingresses; TestFirstInstallClaimsEveryExistingHost measures from it.
	adoptStart time.Time
)

// gracePeriod is short so that release can be watched; adoptInterval
// likewise for objects admitted while no replica answered. Both are the
// product's own settings (the configuration file and a serve flag); the
// client settings are serve's defaults.
const (
	gracePeriod   = 5 * time.Second
	adoptInterval = 5 * time.Second
)

// preexisting is the number of Ingresses that exist before the guard is
// installed (TENANTGUARD_PREEXISTING overrides it).
func preexisting() int {
	n := 5000
	if v := os.Getenv("TENANTGUARD_PREEXISTING"); v != "" {
		fmt.Sscan(v, &n)
	}
	return n
}

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
	admin, err = client.New(fastConfig(env.Config), client.Options{Scheme: kinds.Scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	if err := createPreexisting(ctx, preexisting()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "tenantguard-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := devenv.BuildBinary(ctx, filepath.Join(dir, "bin"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg = config.Default()
	cfg.ClaimGracePeriod.Duration = gracePeriod
	// The riskier policy: an error from the guard admits the object.
	cfg.NonTenantFailurePolicy = "Ignore"
	adoptStart = time.Now()
	guards, err = env.StartProcGuards(ctx, devenv.ProcGuardOptions{
		Binary: bin, Replicas: 2, Config: cfg, Dir: filepath.Join(dir, "guards"),
		ExtraArgs: []string{"--adopt-interval=" + adoptInterval.String()},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		guards.WriteLogs(os.Stderr)
	}
	if err := guards.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop guards:", err)
		code = 1
	}
	return code
}

// fastConfig is a client for the test's own users: many at once, as in a
// busy cluster. The guard's own clients use serve's defaults.
func fastConfig(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.QPS, c.Burst = 2000, 4000
	c.Timeout = time.Minute
	return c
}

// createPreexisting makes n Ingresses in 50 namespaces of no tenant before
// the guard exists: a cluster the guard is installed into.
func createPreexisting(ctx context.Context, n int) error {
	const namespaces = 50
	for i := range namespaces {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("legacy-%02d", i)}}); err != nil {
			return err
		}
	}
	work := make(chan int)
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			var first error
			for i := range work {
				ing := ingress(fmt.Sprintf("legacy-%02d", i%namespaces), fmt.Sprintf("app-%d", i), fmt.Sprintf("app-%d.legacy.example.com", i))
				if err := admin.Create(ctx, ing); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	for range 16 {
		if err := <-errs; err != nil {
			return fmt.Errorf("create preexisting Ingresses: %w", err)
		}
	}
	return nil
}

// ingress is an Ingress with one rule per host, all to one Service.
func ingress(namespace, name string, hostNames ...string) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	class := "nginx"
	ing.Spec.IngressClassName = &class
	prefix := networkingv1.PathTypePrefix
	for _, h := range hostNames {
		ing.Spec.Rules = append(ing.Spec.Rules, networkingv1.IngressRule{Host: h, IngressRuleValue: networkingv1.IngressRuleValue{
			HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}},
		}})
	}
	return ing
}
