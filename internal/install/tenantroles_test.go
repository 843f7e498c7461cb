package install_test

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/tenantguard/tenantguard/internal/tenancy"
)

var updateChart = flag.Bool("update-chart", false, "rewrite charts/tenantguard/templates/tenant-roles.yaml from internal/tenancy")

const tenantRolesTemplate = chartDir + "/templates/tenant-roles.yaml"

// TestChartTenantRolesMatchGo: the tenant controller's roles in the chart
// are the ones internal/tenancy defines, and the guard's ClusterRole holds
// every rule the controller needs (tenancy.ControllerRules). Run with
// -update-chart to rewrite the template.
func TestChartTenantRolesMatchGo(t *testing.T) {
	want := []*rbacv1.ClusterRole{tenancy.TenantAdminClusterRole(), tenancy.NamespaceCreatorClusterRole()}
	if *updateChart {
		out := []byte("# Generated from internal/tenancy by\n#   go test ./internal/install -run TestChartTenantRolesMatchGo -update-chart\n{{- if .Values.tenantController.enabled }}\n")
		for _, r := range want {
			r = r.DeepCopy()
			r.APIVersion, r.Kind = "rbac.authorization.k8s.io/v1", "ClusterRole"
			b, err := yaml.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			out = append(append(out, "---\n"...), b...)
		}
		out = append(out, "{{- end }}\n"...)
		if err := os.WriteFile(filepath.FromSlash(tenantRolesTemplate), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]*rbacv1.ClusterRole{}
	for _, o := range render(t, nil) {
		u, ok := o.(*unstructured.Unstructured)
		if !ok || u.GetKind() != "ClusterRole" {
			continue
		}
		r := &rbacv1.ClusterRole{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, r); err != nil {
			t.Fatal(err)
		}
		got[r.Name] = r
	}
	for _, w := range want {
		g := got[w.Name]
		if g == nil {
			t.Fatalf("the chart renders no ClusterRole %s (run with -update-chart)", w.Name)
		}
		if !reflect.DeepEqual(g.Rules, w.Rules) {
			t.Errorf("ClusterRole %s in the chart differs from internal/tenancy (run with -update-chart)", w.Name)
		}
	}
	guard := got["tenantguard"]
	if guard == nil {
		t.Fatal("the chart renders no ClusterRole tenantguard")
	}
	for _, need := range tenancy.ControllerRules() {
		if !covered(need, guard.Rules) {
			t.Errorf("the guard's ClusterRole lacks a rule the tenant controller needs: %+v", need)
		}
	}
}

// covered reports whether rules grant everything need does.
func covered(need rbacv1.PolicyRule, rules []rbacv1.PolicyRule) bool {
	for _, g := range need.APIGroups {
		for _, r := range need.Resources {
			for _, v := range need.Verbs {
				names := need.ResourceNames
				if len(names) == 0 {
					names = []string{""}
				}
				for _, n := range names {
					if !grants(rules, g, r, v, n) {
						return false
					}
				}
			}
		}
	}
	return true
}

func grants(rules []rbacv1.PolicyRule, group, resource, verb, name string) bool {
	in := func(list []string, s string) bool {
		for _, x := range list {
			if x == s || x == "*" {
				return true
			}
		}
		return false
	}
	for _, r := range rules {
		if in(r.APIGroups, group) && in(r.Resources, resource) && in(r.Verbs, verb) &&
			(len(r.ResourceNames) == 0 || (name != "" && in(r.ResourceNames, name))) {
			return true
		}
	}
	return false
}
