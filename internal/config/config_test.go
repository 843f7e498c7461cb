package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantguard/tenantguard/internal/config"
)

func TestDefaults(t *testing.T) {
	c := config.Default()
	if !c.Excluded("kube-system") || !c.Excluded("tenantguard-system") || c.Excluded("default") {
		t.Errorf("excluded namespaces: %v", c.ExcludedNamespaces)
	}
	if c.ClaimGracePeriod.Duration != 2*time.Minute || c.NonTenantFailurePolicy != "Fail" || len(c.InternalLoadBalancerAnnotations) != 1 || c.InternalLoadBalancerAnnotations[0] != config.AzureInternal {
		t.Errorf("defaults: %+v", c)
	}
}

func TestParse(t *testing.T) {
	c, err := config.Parse([]byte(`
apiVersion: tenantguard.dev/v1alpha1
kind: GuardConfig
guardNamespace: guard
excludedNamespaces: [kube-system, monitoring]
claimGracePeriod: 30s
internalLoadBalancerAnnotations:
  - {key: example.com/internal, value: "yes"}
redactOwnerNamespace: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Excluded("guard") || !c.Excluded("kube-system") || c.ClaimGracePeriod.Duration != 30*time.Second || len(c.InternalLoadBalancerAnnotations) != 1 || !c.RedactOwnerNamespace {
		t.Errorf("parsed: %+v", c)
	}
}

func TestParseRefuses(t *testing.T) {
	tests := map[string]string{
		"guardNamespce: x":                                         "unknown field",
		"claimGracePeriod: soon":                                   "2m",
		"claimGracePeriod: -1s":                                    "negative",
		"nonTenantFailurePolicy: Maybe":                            "Fail or Ignore",
		"kind: Tenant":                                             "GuardConfig",
		"internalLoadBalancerAnnotations: [{}]":                    "needs a key and the value",
		"internalLoadBalancerAnnotations: [{key: a, value: \"\"}]": "needs a key and the value",
		"excludedNamespaces: {a: b}":                               "cannot unmarshal",
	}
	for in, want := range tests {
		if _, err := config.Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

func TestLoad(t *testing.T) {
	if c, err := config.Load(""); err != nil || c.GuardNamespace != "tenantguard-system" {
		t.Fatalf("Load(\"\"): %v", err)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("claimGracePeriod: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load of a bad file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("claimGracePeriod: 1m\nexcludedNamespaces: [a]\n"))
	f.Add([]byte("internalLoadBalancerAnnotations: [{key: k, value: v}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data)
		if err == nil && (c.GuardNamespace == "" || c.ClaimGracePeriod.Duration < 0) {
			t.Fatalf("accepted a configuration without defaults: %+v", c)
		}
	})
}
