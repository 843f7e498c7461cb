package main

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/tenantguard/tenantguard/internal/registry/registrytest"
)

// TestRegistryCommand runs `tenantguard registry` as documented, with a
// tenants file and a robots file in front of a real Distribution registry,
// and pushes through it with go-containerregistry.
func TestRegistryCommand(t *testing.T) {
	up := registrytest.Start(t, registrytest.Options{})
	dir := t.TempDir()
	tenants := filepath.Join(dir, "tenants.yaml")
	write(t, tenants, `apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: project1}
spec:
  registry:
    repositories: [{pattern: "project1/*", actions: [pull, push]}]
    immutableTags: ["v*"]
`)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-password"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	robots := filepath.Join(dir, "robots.yaml")
	write(t, robots, "robots:\n- name: project1-ci\n  tenant: project1\n  passwordHash: '"+string(hash)+"'\n")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cmd := newRootCommand()
	var out, errOut syncBuffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"registry", "--upstream", up.URL.String(), "--tenants", tenants, "--robots", robots,
		"--addr", addr, "--token-addr", addr, "--metrics-addr", "", "--audit-log", filepath.Join(dir, "audit.log")})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry: %v\n%s", err, errOut.String())
		}
	}()

	var resp *http.Response
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if resp, err = http.Get("http://" + addr + "/v2/"); err == nil {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("registry does not listen on %s: %v\n%s", addr, err, errOut.String())
		}
	}
	resp.Body.Close()
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(ch, "Bearer realm=") {
		t.Fatalf("/v2/ answered %d %q, want 401 with a Bearer challenge", resp.StatusCode, ch)
	}
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "project1-ci", Password: "s3cret-password"})
	ref, _ := name.ParseReference(addr+"/project1/app:v1", name.Insecure)
	if err := remote.Write(ref, img, auth); err != nil {
		t.Fatalf("push to the tenant's repository: %v", err)
	}
	other, _ := name.ParseReference(addr+"/project2/app:v1", name.Insecure)
	if err := remote.Write(other, img, auth); err == nil {
		t.Fatal("push to another tenant's repository was accepted")
	}
}

func TestRegistryCommandBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"registry", "--upstream", "http://127.0.0.1:1"},
		{"registry", "--upstream", "http://127.0.0.1:1", "--tenants", "x", "--kubeconfig", "k", "--in-cluster"},
	} {
		if _, errOut, code := run(t, "", args...); code != 2 || !strings.Contains(errOut, "Error:") {
			t.Errorf("%v: exit %d, want 2; %s", args, code, errOut)
		}
	}
}
