package devenv_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/version"
)

func TestControlPlaneAuthorizesAdminAndRefusesUnprivilegedUser(t *testing.T) {
	env := devenvtest.Start(t, devenv.Options{})
	ctx := context.Background()

	admin := kubernetes.NewForConfigOrDie(env.Config)
	v, err := admin.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if v.GitVersion != version.Kubernetes {
		t.Errorf("API server reports %s, want %s (the version stamped at build)", v.GitVersion, version.Kubernetes)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "made-by-admin"}}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin creates a namespace: %v", err)
	}

	userCfg, err := env.AddUser("alice", "project1-devs")
	if err != nil {
		t.Fatal(err)
	}
	alice := kubernetes.NewForConfigOrDie(userCfg)
	ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "made-by-alice"}}
	_, err = alice.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("unprivileged user creating a namespace: got %v, want Forbidden", err)
	}
	if !strings.Contains(err.Error(), `"alice"`) {
		t.Errorf("the refusal should name the user: %v", err)
	}
}

func TestKubeconfigWorksWithBuiltKubectl(t *testing.T) {
	env := devenvtest.Start(t, devenv.Options{})
	path := filepath.Join(t.TempDir(), "dev", "kubeconfig")
	if err := devenv.WriteKubeconfig(path, env.Config, "tenantguard-dev"); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("kubeconfig mode %o, want 600: it holds a client key", perm)
	}
	if _, err := clientcmd.BuildConfigFromFlags("", path); err != nil {
		t.Fatalf("client-go cannot load the written kubeconfig: %v", err)
	}
	out, err := exec.Command(env.Binaries.Kubectl, "--kubeconfig", path, "get", "namespaces", "-o", "name").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get namespaces: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "namespace/default") {
		t.Errorf("kubectl output lacks namespace/default:\n%s", out)
	}
}

func TestKubeconfigRefusesEmptyConfig(t *testing.T) {
	if _, err := devenv.Kubeconfig(nil, "x"); err == nil {
		t.Fatal("want an error for a nil config")
	}
}
