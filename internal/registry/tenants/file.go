// Package tenants supplies the gateway with the Tenants whose registry rules
// it enforces and with the tenant of a namespace: from a file (the gateway
// runs outside a cluster, or the rules are managed as a ConfigMap), or from
// the cluster, watching Tenants and Namespaces through an informer cache.
package tenants

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// ParseFile parses Tenants from YAML or JSON: one Tenant, a TenantList or a
// v1 List of Tenants, or several YAML documents of those.
func ParseFile(data []byte) ([]v1alpha1.Tenant, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []v1alpha1.Tenant
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue
		}
		ts, err := parseObject(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		out = append(out, ts...)
	}
	return out, nil
}

func parseObject(raw []byte) ([]v1alpha1.Tenant, error) {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, err
	}
	switch head.Kind {
	case "List", "TenantList":
		var out []v1alpha1.Tenant
		for i, item := range head.Items {
			ts, err := parseObject(item)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out = append(out, ts...)
		}
		return out, nil
	case "Tenant":
		if head.APIVersion != v1alpha1.GroupVersion.String() {
			return nil, fmt.Errorf("apiVersion %q of a Tenant is not %s", head.APIVersion, v1alpha1.GroupVersion)
		}
		var t v1alpha1.Tenant
		if err := yaml.UnmarshalStrict(raw, &t); err != nil {
			return nil, fmt.Errorf("tenant: %w", err)
		}
		if t.Name == "" {
			return nil, errors.New("a Tenant has no metadata.name")
		}
		return []v1alpha1.Tenant{t}, nil
	}
	return nil, fmt.Errorf("kind %q is not Tenant, TenantList or List", head.Kind)
}

// LoadFile reads and parses a Tenants file.
func LoadFile(path string) ([]v1alpha1.Tenant, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenants: %w", err)
	}
	ts, err := ParseFile(data)
	if err != nil {
		return nil, fmt.Errorf("tenants file %s: %w", path, err)
	}
	return ts, nil
}
