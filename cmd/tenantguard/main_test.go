package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tenantguard/tenantguard/internal/check"
)

var update = flag.Bool("update", false, "rewrite golden files")

// run executes the CLI in-process and returns stdout, stderr and the exit
// code main would use.
func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("Error: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), exitCode(err)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestCheckExamples(t *testing.T) {
	t.Chdir("../..")
	out, _, code := run(t, "", "check", "--tenants", "examples/tenants", "examples/manifests")
	if code != 1 {
		t.Fatalf("exit code %d, want 1 (findings)", code)
	}
	t.Chdir("cmd/tenantguard")
	golden(t, "check-examples.txt", out)
}

func TestCheckJSON(t *testing.T) {
	t.Chdir("../..")
	out, _, code := run(t, "", "check", "-o", "json", "--tenants", "examples/tenants", "examples/manifests/04-problem5-images.yaml")
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	var res check.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(res.Findings) != 3 || res.Findings[0].Rule != "image-repository" || res.Findings[0].Line != 4 {
		t.Fatalf("findings: %+v", res.Findings)
	}
}

func TestCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	tenants := filepath.Join(dir, "tenants.yaml")
	write(t, tenants, "apiVersion: tenantguard.dev/v1alpha1\nkind: Tenant\nmetadata: {name: p1}\nspec: {namespaces: [p1]}\n")
	clean := "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: p1}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"clean bundle from stdin", clean, []string{"check", "--tenants", tenants, "-"}, 0, "2 object(s) checked"},
		{"findings", "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: p1}\nspec: {type: NodePort, ports: [{port: 80}]}\n",
			[]string{"check", "--tenants", tenants, "-"}, 1, "<stdin>:1: Service p1/s"},
		{"malformed YAML", "apiVersion: v1\nkind: Service\nmetadata: {name: [\n", []string{"check", "-"}, 2, "<stdin>:1: not valid YAML"},
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {tpye: NodePort}\n", []string{"check", "-"}, 2, "unknown field"},
		{"missing file", "", []string{"check", filepath.Join(dir, "nope.yaml")}, 2, "no such file"},
		{"tenants file with another kind", clean, []string{"check", "--tenants", "-", "-"}, 2, "is not a Tenant"},
		{"bad output format", "", []string{"check", "-o", "xml", "-"}, 2, "want text or json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if !strings.Contains(out+errOut, tc.want) {
				t.Errorf("output lacks %q:\n%s%s", tc.want, out, errOut)
			}
		})
	}
}

func TestDoctorBadInputExitsTwo(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "kubeconfig")
	write(t, bad, "this: is: not: a kubeconfig")
	for _, args := range [][]string{
		{"doctor", "--kubeconfig", bad},
		{"doctor", "--kubeconfig", filepath.Join(dir, "missing")},
		{"doctor", "-o", "xml"},
	} {
		_, errOut, code := run(t, "", args...)
		if code != 2 || !strings.Contains(errOut, "Error:") {
			t.Errorf("%v: exit %d, want 2 with a reason; stderr: %s", args, code, errOut)
		}
	}
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "", "version")
	if code != 0 || !strings.Contains(out, "Kubernetes v1.37.2") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestInstallRendersTheChart: install prints the chart's rendering, the
// same every time, with no key in it; its flags set the chart's values,
// and bad input exits 2 with a reason.
func TestInstallRendersTheChart(t *testing.T) {
	img := "registry.example.com/tenantguard:test"
	first, errOut, code := run(t, "", "install", "--image", img)
	if code != 0 {
		t.Fatalf("install: %d %s", code, errOut)
	}
	if second, _, _ := run(t, "", "install", "--image", img); second != first {
		t.Fatal("install must print the same output every time, so that applying it again changes nothing")
	}
	if strings.Contains(first, "PRIVATE KEY") || strings.Contains(first, "kind: Secret") {
		t.Fatal("install prints a key or a Secret")
	}
	values := filepath.Join(t.TempDir(), "values.yaml")
	write(t, values, "networkPolicy:\n  enabled: true\n")
	out, errOut, code := run(t, "", "install", "--image", img, "-f", values, "--set", "serviceMonitor.enabled=true", "--cert-manager")
	for _, kind := range []string{"NetworkPolicy", "ServiceMonitor", "Certificate"} {
		if code != 0 || !strings.Contains(out, "kind: "+kind+"\n") {
			t.Errorf("install with values: exit %d, no %s; stderr: %s", code, kind, errOut)
		}
	}
	for _, args := range [][]string{
		{"install"},
		{"install", "--image", img, "--cert-dir", t.TempDir()},
		{"install", "--image", img, "--set", "replica=3"},
		{"install", "--image", img, "--cert-validity", "1h"},
		{"install", "--image", img, "-f", filepath.Join(t.TempDir(), "missing.yaml")},
	} {
		if _, errOut, code := run(t, "", args...); code != 2 || !strings.Contains(errOut, "Error:") {
			t.Errorf("%v: exit %d, want 2 with a reason; stderr: %s", args, code, errOut)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the command writing and the test
// reading at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
