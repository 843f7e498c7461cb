package devenv_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/kinds"
)

// TestProcGuardsRunAsInstalledAndSurviveAKilledReplica starts two serve
// processes under install's identity behind the round robin, checks that a
// tenant's public LoadBalancer is refused through it, kills one replica and
// checks that the other answers every following request.
func TestProcGuardsRunAsInstalledAndSurviveAKilledReplica(t *testing.T) {
	ctrl.SetLogger(logr.Discard())
	crds, err := devenv.AllCRDs()
	if err != nil {
		t.Fatal(err)
	}
	env := devenvtest.Start(t, devenv.Options{CRDs: crds})
	ctx := context.Background()
	admin, err := client.New(env.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	// A tenant with one namespace, whose developers may manage Services.
	must(t, admin.Create(ctx, &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: v1alpha1.TenantSpec{Namespaces: []string{"shop"}}}))
	must(t, admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{v1alpha1.TenantLabel: "shop"}}}))
	must(t, admin.Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "service-editor"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"*"}}},
	}))
	must(t, admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "devs", Namespace: "shop"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "service-editor"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "shop-devs"}},
	}))

	p, err := env.StartProcGuards(ctx, devenv.ProcGuardOptions{Dir: t.TempDir(), Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			p.WriteLogs(os.Stderr)
		}
		if err := p.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	for i := range 2 {
		if code := get(t, p.HealthURL(i)+"/readyz"); code != http.StatusOK {
			t.Fatalf("replica %d /readyz: %d", i, code)
		}
	}

	// The processes run as install's service account, not as an admin.
	saCfg, err := clientcmd.BuildConfigFromFlags("", p.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	review, err := kubernetes.NewForConfigOrDie(saCfg).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := review.Status.UserInfo.Username, "system:serviceaccount:tenantguard-system:tenantguard"; got != want {
		t.Fatalf("guard identity %q, want %q", got, want)
	}

	userCfg := rest.CopyConfig(env.Config)
	userCfg.Impersonate = rest.ImpersonationConfig{UserName: "alice", Groups: []string{"shop-devs", "system:authenticated"}}
	alice, err := client.New(userCfg, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	// RBAC reaches the authorizer a moment after the binding is written;
	// a ClusterIP Service is admitted by the guard once it does.
	eventually(t, func() error {
		return alice.Create(ctx, service("web", corev1.ServiceTypeClusterIP), client.DryRunAll)
	})

	// Every refusal is counted, whatever its other labels. (Allowed
	// answers are not: the guard's own tenant controller makes requests
	// the webhook answers in the background.)
	answers := func(i int) float64 {
		m, err := p.Metrics(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		return m.Sum("tenantguard_admission_decisions_total", map[string]string{"result": "denied"})
	}
	before := answers(0) + answers(1)
	refusedByGuard(t, alice.Create(ctx, service("public", corev1.ServiceTypeLoadBalancer)))
	if after := answers(0) + answers(1); after != before+1 {
		t.Fatalf("the replicas counted %v refusals, want %v", after, before+1)
	}

	oldPid := p.Pid(0)
	if err := p.Kill(0); err != nil {
		t.Fatal(err)
	}
	if p.Pid(0) != 0 {
		t.Fatalf("replica 0 still has a pid after Kill")
	}
	before = answers(1)
	const n = 10
	for k := range n {
		refusedByGuard(t, alice.Create(ctx, service(fmt.Sprintf("public-%d", k), corev1.ServiceTypeLoadBalancer)))
	}
	if after := answers(1); after != before+n {
		t.Fatalf("replica 1 counted %v answers after replica 0 died, want %v", after-before, n)
	}

	if err := p.Start(0); err != nil {
		t.Fatal(err)
	}
	if pid := p.Pid(0); pid == 0 || pid == oldPid {
		t.Fatalf("replica 0 restarted with pid %d (was %d)", pid, oldPid)
	}
	if code := get(t, p.HealthURL(0)+"/readyz"); code != http.StatusOK {
		t.Fatalf("restarted replica 0 /readyz: %d", code)
	}
	log, err := os.ReadFile(p.LogPath(0))
	if err != nil {
		t.Fatal(err)
	}
	if starts := strings.Count(string(log), " serve --config="); starts != 2 {
		t.Errorf("replica 0's log records %d starts, want 2", starts)
	}
}

func service(name string, typ corev1.ServiceType) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec:       corev1.ServiceSpec{Type: typ, Ports: []corev1.ServicePort{{Port: 80}}},
	}
}

func refusedByGuard(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("a tenant's public LoadBalancer was admitted")
	}
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "tenantguard refused") {
		t.Fatalf("want the guard's refusal, got: %v", err)
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
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

// TestRoundRobinSkipsARefusingReplica proxies to one live backend and one
// closed port: every connection reaches the live one, and when every
// backend refuses, the client's connection is closed.
func TestRoundRobinSkipsARefusingReplica(t *testing.T) {
	live, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("live\n"))
			c.Close()
		}
	}()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // its port now refuses

	rr, err := devenv.StartRoundRobin(deadAddr, live.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	read := func() string {
		c, err := net.Dial("tcp", rr.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		data, _ := io.ReadAll(c)
		return string(data)
	}
	for k := range 4 {
		if got := read(); got != "live\n" {
			t.Fatalf("connection %d read %q, want the live backend's greeting", k, got)
		}
	}
	if rr.Connections(0) != 0 || rr.Connections(1) != 4 {
		t.Errorf("connections per backend: %d, %d; want 0, 4", rr.Connections(0), rr.Connections(1))
	}

	live.Close()
	if got := read(); got != "" {
		t.Errorf("with every backend refusing, read %q; want the connection closed", got)
	}
	if err := rr.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := rr.Close(); err != nil {
		t.Errorf("close again: %v", err)
	}
}

func TestRoundRobinNeedsBackends(t *testing.T) {
	if _, err := devenv.StartRoundRobin(); err == nil {
		t.Fatal("a round robin without backends started")
	}
}
