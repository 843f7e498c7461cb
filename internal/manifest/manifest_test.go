package manifest_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/tenantguard/tenantguard/internal/manifest"
)

func TestParse(t *testing.T) {
	data := `# leading comment
apiVersion: v1
kind: Service
metadata: {name: a}
---
---
# only a comment
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: cm}
  - apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata: {name: i}
--- # a comment on the separator
{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
`
	objs, err := manifest.Parse("f.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		typed := "typed"
		if o.Object == nil {
			typed = "unknown"
		}
		got = append(got, o.GVK.Kind+":"+typed+":"+strconv.Itoa(o.Line))
	}
	want := "Service:typed:2 ConfigMap:typed:9 Ingress:typed:9 Widget:unknown:19"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, data, want string
		line             int
	}{
		{"bad yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [\n", "not valid YAML", 5},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", "apiVersion and kind", 1},
		{"duplicate field", "apiVersion: v1\nkind: Service\nkind: Service\nmetadata: {name: s}\n", "", 1},
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {bogus: 1}\n", "unknown field", 1},
		{"wrong type", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: 80}\n", "Service \"s\"", 1},
		{"top-level array", "[1, 2]\n", "List", 1},
		{"bad list item", "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Service, spec: {bogus: 1}}]\n", "item 0", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := manifest.Parse("f.yaml", []byte(tc.data))
			var me *manifest.Error
			if !errors.As(err, &me) {
				t.Fatalf("want a *manifest.Error, got %v", err)
			}
			if me.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q at line %d, want %q at line %d", err, me.Line, tc.want, tc.line)
			}
		})
	}
}

func TestReadPathsWalksDirectoriesInOrder(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		filepath.Join(dir, "b.yaml"):   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
		filepath.Join(dir, "a.json"):   `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}`,
		filepath.Join(sub, "c.yml"):    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
		filepath.Join(dir, "notes.md"): "not a manifest",
	}
	for p, d := range files {
		if err := os.WriteFile(p, []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := manifest.ReadPaths([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, filepath.Base(o.File))
	}
	if strings.Join(names, ",") != "a.json,b.yaml,c.yml" {
		t.Fatalf("order %v", names)
	}
}

func TestRemovedVersionsAreConverted(t *testing.T) {
	data := `apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: old, namespace: p2}
spec:
  backend: {serviceName: catch, servicePort: 80}
  tls: [{hosts: [shop.example.com], secretName: s}]
  rules:
    - host: shop.example.com
      http: {paths: [{path: /, backend: {serviceName: web, servicePort: http}}]}
---
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: beta}
spec: {rules: [{host: a.example.com, http: {paths: [{path: /x, pathType: Prefix, backend: {serviceName: web, servicePort: 8080}}]}}]}
---
apiVersion: apps/v1beta2
kind: Deployment
metadata: {name: d}
spec: {template: {spec: {containers: [{name: c, image: evil.io/x}]}}}
---
apiVersion: batch/v1beta1
kind: CronJob
metadata: {name: c}
spec: {schedule: "* * * * *", jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: evil.io/y}]}}}}}
`
	objs, err := manifest.Parse("old.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 4 {
		t.Fatalf("%d objects", len(objs))
	}
	for _, o := range objs {
		if o.Removed == nil || o.GVK != o.Removed.To || o.Removed.Since == "" {
			t.Fatalf("%s at line %d not marked as converted from a removed version: %+v", o.GVK, o.Line, o.Removed)
		}
	}
	old, ok := objs[0].Object.(*networkingv1.Ingress)
	if !ok || objs[0].GVK.String() != "networking.k8s.io/v1, Kind=Ingress" || objs[0].Removed.From.Group != "extensions" {
		t.Fatalf("extensions/v1beta1 Ingress read as %T %s", objs[0].Object, objs[0].GVK)
	}
	if b := old.Spec.DefaultBackend; b == nil || b.Service == nil || b.Service.Name != "catch" || b.Service.Port.Number != 80 {
		t.Errorf("spec.backend became %+v, want spec.defaultBackend to service catch:80", b)
	}
	if p := old.Spec.Rules[0].HTTP.Paths[0]; p.Backend.Service == nil || p.Backend.Service.Port.Name != "http" || old.Spec.Rules[0].Host != "shop.example.com" {
		t.Errorf("rule became %+v", old.Spec.Rules[0])
	}
	if len(old.Spec.TLS) != 1 || old.Spec.TLS[0].Hosts[0] != "shop.example.com" || old.Namespace != "p2" {
		t.Errorf("tls or metadata lost: %+v %q", old.Spec.TLS, old.Namespace)
	}
	beta := objs[1].Object.(*networkingv1.Ingress)
	if p := beta.Spec.Rules[0].HTTP.Paths[0]; p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix || p.Backend.Service.Port.Number != 8080 {
		t.Errorf("networking.k8s.io/v1beta1 path became %+v", p)
	}
	if d, ok := objs[2].Object.(*appsv1.Deployment); !ok || d.Spec.Template.Spec.Containers[0].Image != "evil.io/x" {
		t.Errorf("apps/v1beta2 Deployment read as %T", objs[2].Object)
	}
	if c, ok := objs[3].Object.(*batchv1.CronJob); !ok || c.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image != "evil.io/y" {
		t.Errorf("batch/v1beta1 CronJob read as %T", objs[3].Object)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {type: LoadBalancer}\n",
		"apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Pod, metadata: {name: p}}]\n",
		"---\n---\n",
		`{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"i"},"spec":{"rules":[{"host":"a.b"}]}}`,
		"a: [\n",
		"apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: i}\nspec: {backend: {serviceName: s, servicePort: x}, rules: [{host: a.b, http: {paths: [{backend: {}}]}}]}\n",
		"apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: d}\nspec: {rollbackTo: {revision: 1}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := manifest.Parse("fuzz.yaml", data)
		if err != nil {
			var me *manifest.Error
			if !errors.As(err, &me) || me.Line < 1 {
				t.Fatalf("error without a place: %v", err)
			}
			return
		}
		for _, o := range objs {
			if o.Line < 1 || o.GVK.Kind == "" {
				t.Fatalf("object without a place or kind: %+v", o)
			}
		}
	})
}
