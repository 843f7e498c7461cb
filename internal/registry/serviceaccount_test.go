package registry_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/registry"
)

const registryAudience = "tenantguard-registry"

// TestServiceAccountLogin logs in with ServiceAccount tokens of a real API
// server (TokenRequest, checked by TokenReview), with the Tenants and
// Namespaces watched in that cluster.
func TestServiceAccountLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "tenantguard.dev_tenants.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		t.Fatal(err)
	}
	cp := devenvtest.Start(t, devenv.Options{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}})
	ctx := context.Background()
	scheme := runtime.NewScheme()
	_ = v1alpha1.AddToScheme(scheme)
	_ = corev1.AddToScheme(scheme)
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(cp.Config)

	grant := func(pattern string) v1alpha1.RepositoryGrant {
		return v1alpha1.RepositoryGrant{Pattern: pattern, Actions: []v1alpha1.RegistryAction{"pull", "push", "delete"}}
	}
	for _, tn := range []*v1alpha1.Tenant{
		{ObjectMeta: metav1.ObjectMeta{Name: "project1"}, Spec: v1alpha1.TenantSpec{Registry: v1alpha1.RegistryPolicy{Repositories: []v1alpha1.RepositoryGrant{grant("project1/*")}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "project2"}, Spec: v1alpha1.TenantSpec{Registry: v1alpha1.RegistryPolicy{Repositories: []v1alpha1.RepositoryGrant{grant("project2/*")}}}},
	} {
		if err := c.Create(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	saToken := func(ns string, labels map[string]string, audiences ...string) string {
		t.Helper()
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		// envtest runs without the ServiceAccount admission plugin: create it.
		if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}}, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "builder", &authv1.TokenRequest{
			Spec: authv1.TokenRequestSpec{Audiences: audiences},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	ciToken := saToken("project1-ci", map[string]string{v1alpha1.TenantLabel: "project1"}, registryAudience)
	looseToken := saToken("loose", nil, registryAudience)
	apiServerToken := saToken("project1-ci", nil) // the API server's own audience

	e := newEnv(t, envOptions{mutate: func(cfg *registry.Config) {
		cfg.TenantsFile = "" // watch the Tenants in the cluster
		cfg.RobotsFile = ""  // service accounts only
		cfg.Kube = cp.Config
		cfg.ServiceAccountAudiences = []string{registryAudience}
	}})
	ci := []remote.Option{remote.WithAuth(&authn.Basic{Username: "serviceaccount", Password: ciToken})}

	img := randomImage(t)
	if err := remote.Write(e.ref(t, "project1/app:1"), img, ci...); err != nil {
		t.Fatalf("project1-ci pushing project1/app: %v", err)
	}
	if _, err := remote.Image(e.ref(t, "project1/app:1"), ci...); err != nil {
		t.Fatalf("project1-ci pulling project1/app: %v", err)
	}
	err = remote.Write(e.ref(t, "project2/app:1"), img, ci...)
	if status, _ := errorCode(err); status != http.StatusForbidden {
		t.Errorf("project1-ci pushing project2/app: %v", err)
	}
	// A namespace without the tenant label has no rights; the token endpoint says why.
	_, err = remote.Image(e.ref(t, "project1/app:1"), remote.WithAuth(&authn.Basic{Username: "serviceaccount", Password: looseToken}))
	if err == nil || !strings.Contains(err.Error(), v1alpha1.TenantLabel) {
		t.Errorf("service account of an unlabelled namespace: %v", err)
	}
	// A token for the API server's audience is not accepted here.
	_, err = remote.Image(e.ref(t, "project1/app:1"), remote.WithAuth(&authn.Basic{Username: "serviceaccount", Password: apiServerToken}))
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("service account token for another audience: %v", err)
	}
	// A refused token costs the bcrypt check a wrong robot password costs, so
	// that the time of a refusal does not tell robot names apart; whatever
	// the name, each refused login is one check.
	for _, user := range []string{"serviceaccount", "no-such-robot"} {
		before := passwordChecks(t, e)
		if status, _, body := e.tokenStatus(t, http.DefaultClient, user, apiServerToken); status != http.StatusUnauthorized {
			t.Fatalf("token for another audience as %s: %d %s", user, status, body)
		}
		if n := passwordChecks(t, e) - before; n != 1 {
			t.Errorf("a refused service account token as %s cost %d password checks, want 1", user, n)
		}
	}
	// Tenants are watched: a new grant takes effect without a restart.
	var p1 v1alpha1.Tenant
	if err := c.Get(ctx, client.ObjectKey{Name: "project1"}, &p1); err != nil {
		t.Fatal(err)
	}
	p1.Spec.Registry.Repositories = append(p1.Spec.Registry.Repositories, v1alpha1.RepositoryGrant{Pattern: "shared/base", Actions: []v1alpha1.RegistryAction{"pull", "push"}})
	if err := c.Update(ctx, &p1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := remote.Write(e.ref(t, "shared/base:1"), img, ci...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new grant not in effect after 20s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The audit log names the service account and its tenant.
	found := false
	for _, l := range e.audit.lines() {
		if l["event"] == "push" && l["identity"] == "system:serviceaccount:project1-ci:builder" && l["tenant"] == "project1" {
			found = true
		}
	}
	if !found {
		t.Error("no audit line for the service account's push")
	}
}

// passwordChecks reads tenantguard_registry_password_checks_total.
func passwordChecks(t testing.TB, e *env) int {
	t.Helper()
	resp, err := http.Get(e.srv.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "tenantguard_registry_password_checks_total "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	t.Fatalf("no tenantguard_registry_password_checks_total in the metrics")
	return 0
}
