//go:build !release && !windows

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDev runs `tenantguard dev` as the README does: it comes up, replays
// the five problems (each refused with a clear message), serves a kubeconfig
// the built kubectl can use, and leaves no process behind when interrupted.
func TestDev(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := newRootCommand()
	var out, errOut syncBuffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"dev", "--dir", dir})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	deadline := time.After(10 * time.Minute)
	for !strings.Contains(out.String(), "Ctrl-C stops everything") {
		select {
		case err := <-done:
			t.Fatalf("dev stopped early: %v\n%s\n%s", err, out.String(), errOut.String())
		case <-deadline:
			t.Fatalf("dev did not come up:\n%s\n%s", out.String(), errOut.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	report := out.String()
	for _, want := range []string{
		"Problem 1", "Fix: forward the zone privatelink.westeurope.azmk8s.io",
		"Problem 2", `Fix: add ".privatelink.westeurope.azmk8s.io" to NO_PROXY`,
		"Problem 3", "refused  Service project1/public-lb", "allowed  Service project1/internal-lb",
		"Problem 4", "refused  Ingress project2/shop", `belongs to namespace "project1" of tenant "project1"`,
		"Problem 5", "refused  Deployment project2/api", "rule image-repository",
		"allowed  push project1/shop:v1.0 (as project1-ci)",
		"refused  push project1/shop:v1.1 (as project2-ci)", "DENIED: tenant project2 may not push project1/shop",
		"refused  push project1/shop:v1.0 (as project1-ci)", `immutable (immutable tag pattern "v*" of tenant project1)`,
		"allowed  push project1/shop:dev (as project1-ci)",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("dev output lacks %q", want)
		}
	}
	// Only the problems fail in the doctor replay: TLS and the API are fine.
	if strings.Contains(report, "FAIL  tls") || strings.Contains(report, "FAIL  api") {
		t.Errorf("the doctor replay fails more than the field's problems:\n%s", report)
	}
	if t.Failed() {
		t.Log(report)
	}

	kubeconfig := filepath.Join(dir, "kubeconfig")
	kubectl := between(report, "try, from another shell:\n  ", " --kubeconfig")
	got, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "tenants", "-o", "name").CombinedOutput()
	if err != nil || !strings.Contains(string(got), "tenant.tenantguard.dev/project1") {
		t.Fatalf("kubectl from a second shell: %v\n%s", err, got)
	}
	// The controller lists the claim's objects a moment after they appear.
	claims := regexp.MustCompile(`NAME\s+HOST\s+NAMESPACE\s+TENANT\s+OBJECTS\s+AGE\nhost.shop.example.com\s+shop.example.com\s+project1\s+project1\s+Ingress/shop, Ingress/shop-api\s`)
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		got, err = exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "hostclaims").CombinedOutput()
		if err == nil && claims.Match(got) {
			break
		}
		if time.Since(start) > time.Minute {
			t.Errorf("kubectl get hostclaims: %v\n%s", err, got)
			break
		}
	}
	for _, field := range []string{"tenant.spec", "tenant.spec.ingress", "tenant.spec.services", "tenant.spec.images", "tenant.spec.registry", "tenant.spec.resources", "hostclaim.spec"} {
		got, err = exec.Command(kubectl, "--kubeconfig", kubeconfig, "explain", field).CombinedOutput()
		if err != nil || strings.Contains(string(got), "<empty>") || !strings.Contains(string(got), "FIELDS:") {
			t.Errorf("kubectl explain %s does not document every field: %v\n%s", field, err, got)
		}
	}
	// The README's install path, tried against dev: install's output
	// applies beside dev's own guard, every object accepted.
	manifests, errText, code := run(t, "", "install", "--image", "127.0.0.1:5000/tenantguard:dev")
	if code != 0 {
		t.Fatalf("install: exit %d: %s", code, errText)
	}
	apply := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", "-")
	apply.Stdin = strings.NewReader(manifests)
	if got, err := apply.CombinedOutput(); err != nil {
		t.Errorf("install | kubectl apply --server-side against dev: %v\n%s", err, got)
	}
	if children := controlPlaneChildren(t); len(children) != 2 {
		t.Errorf("want etcd and kube-apiserver running as children, found %v", children)
	}

	cancel() // Ctrl-C
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev: %v\n%s", err, errOut.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("dev did not stop")
	}
	if children := controlPlaneChildren(t); len(children) != 0 {
		t.Fatalf("processes left behind: %v", children)
	}
	if _, err := os.Stat(kubeconfig); !os.IsNotExist(err) {
		t.Errorf("the admin kubeconfig should be removed on exit: %v", err)
	}
}

func between(s, start, end string) string {
	_, after, _ := strings.Cut(s, start)
	before, _, _ := strings.Cut(after, end)
	return before
}

// controlPlaneChildren lists this process's children named etcd or
// kube-apiserver.
func controlPlaneChildren(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		comm := s[strings.IndexByte(s, '(')+1 : i]
		fields := strings.Fields(s[i+1:])
		if len(fields) > 1 && fields[1] == me && (comm == "etcd" || comm == "kube-apiserver") {
			out = append(out, comm+"/"+e.Name())
		}
	}
	return out
}
