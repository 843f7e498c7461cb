// Package install renders the tenantguard Helm chart (charts/tenantguard)
// with the Helm SDK, the way `helm install` would: the CRDs, the guard's
// namespace, service account and RBAC, its Deployment and Service, the
// webhook configuration, and the optional parts the values turn on.
// `tenantguard install` prints it for `kubectl apply -f -`, so the chart
// and the command can never disagree.
package install

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/distribution/reference"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"helm.sh/helm/v4/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	charts "github.com/tenantguard/tenantguard/charts/tenantguard"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/version"
)

// The chart's crds/ are copies of config/crd, which `make generate` makes
// from api/; TestChartCRDsAreConfigCRDs checks they are the same.
//go:generate sh -c "rm -f ../../charts/tenantguard/crds/*.yaml && cp ../../config/crd/*.yaml ../../charts/tenantguard/crds/"

// ReleaseName is the release name `install` renders the chart as.
const ReleaseName = "tenantguard"

// Options configure the rendered installation. Each field sets chart values
// (docs/install.md); Values come last and win.
type Options struct {
	// Config is the guard configuration (values: config). Its
	// GuardNamespace is the release namespace, created by the output, and
	// its GuardServiceAccount is serviceAccount.name.
	Config config.Config
	// Image of the tenantguard binary (values: image.repository, image.tag
	// or image.digest). Without a tag, this build's version.
	Image string
	// Replicas of the webhook, at least 1; 2 or more keep admission up
	// during a rollout (values: replicas).
	Replicas int32
	// CertManager has cert-manager issue the webhook's certificate and inject
	// its CA (values: certManager.enabled). Without it, the guard keeps its
	// own CA in a Secret; the output never holds a private key.
	CertManager bool
	// CertValidity is the lifetime of the certificate cert-manager issues
	// (values: certManager.duration); zero keeps the chart's default.
	CertValidity time.Duration
	// Values are further chart values (install --values and --set).
	Values map[string]any
}

// Render returns the objects of an installation in the order to apply
// them: the CRDs first, then the chart's templates in Helm's install order.
func Render(opts Options) ([]client.Object, error) {
	values, err := opts.values()
	if err != nil {
		return nil, err
	}
	return RenderValues(opts.namespace(), values)
}

// RenderValues renders the chart with values into namespace, as
// `helm template --include-crds -n namespace` would.
func RenderValues(namespace string, values map[string]any) ([]client.Object, error) {
	ch, err := Chart()
	if err != nil {
		return nil, err
	}
	kube, err := common.ParseKubeVersion(version.Kubernetes)
	if err != nil {
		return nil, err
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kube
	top, err := util.ToRenderValues(ch, values, common.ReleaseOptions{Name: ReleaseName, Namespace: namespace, IsInstall: true, Revision: 1}, caps)
	if err != nil {
		return nil, fmt.Errorf("chart values: %w", err)
	}
	files, err := engine.Engine{Strict: true}.RenderWithContext(context.Background(), ch, top)
	if err != nil {
		return nil, fmt.Errorf("render the chart: %w", err)
	}
	for name := range files {
		// NOTES.txt and the helpers are not manifests.
		if path.Ext(name) != ".yaml" {
			delete(files, name)
		}
	}
	_, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("sort the rendered manifests: %w", err)
	}
	var objs []client.Object
	for _, c := range ch.CRDObjects() {
		u, err := decode(c.Filename, c.File.Data)
		if err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
	for _, m := range manifests {
		u, err := decode(m.Name, []byte(m.Content))
		if err != nil {
			return nil, err
		}
		if u != nil {
			objs = append(objs, u)
		}
	}
	return objs, nil
}

// Chart loads the embedded chart.
func Chart() (*chart.Chart, error) {
	var files []*archive.BufferedFile
	err := fs.WalkDir(charts.Files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(charts.Files, name)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: name, Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the embedded chart: %w", err)
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("load the embedded chart: %w", err)
	}
	return ch, nil
}

func decode(name string, data []byte) (*unstructured.Unstructured, error) {
	m := map[string]any{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(m) == 0 {
		return nil, nil // only comments
	}
	u := &unstructured.Unstructured{Object: m}
	if u.GetKind() == "" || u.GetAPIVersion() == "" {
		return nil, fmt.Errorf("%s: an object without apiVersion or kind", name)
	}
	return u, nil
}

func (opts Options) namespace() string {
	if opts.Config.GuardNamespace == "" {
		return config.Default().GuardNamespace
	}
	return opts.Config.GuardNamespace
}

// values maps the options to chart values.
func (opts Options) values() (map[string]any, error) {
	if opts.Image == "" {
		return nil, fmt.Errorf("no image: build one (make image, see docs/install.md) and pass --image")
	}
	if opts.Replicas < 1 {
		return nil, fmt.Errorf("replicas must be at least 1 (2 or more keep admission available during a rollout)")
	}
	image, err := imageValues(opts.Image)
	if err != nil {
		return nil, err
	}
	cfg := opts.Config
	if cfg.GuardNamespace == "" {
		cfg = config.Default()
	}
	cfgValues, err := toValues(cfg)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	// The chart sets these two itself.
	delete(cfgValues, "apiVersion")
	delete(cfgValues, "kind")
	certManager := map[string]any{"enabled": opts.CertManager}
	if opts.CertValidity > 0 {
		certManager["duration"] = opts.CertValidity.String()
	}
	values := map[string]any{
		"image":          image,
		"namespace":      map[string]any{"create": true},
		"serviceAccount": map[string]any{"name": cfg.GuardServiceAccount},
		"config":         cfgValues,
		"replicas":       int64(opts.Replicas),
		"certManager":    certManager,
	}
	return loader.MergeMaps(values, opts.Values), nil
}

// imageValues splits an image reference into the chart's image values.
func imageValues(image string) (map[string]any, error) {
	ref, err := reference.Parse(image)
	if err != nil {
		return nil, fmt.Errorf("--image %q: %w (want registry/repository[:tag][@sha256:digest])", image, err)
	}
	named, ok := ref.(reference.Named)
	if !ok {
		return nil, fmt.Errorf("--image %q: no repository (want registry/repository[:tag][@sha256:digest])", image)
	}
	out := map[string]any{"repository": named.Name(), "tag": version.Version}
	if t, ok := ref.(reference.Tagged); ok {
		out["tag"] = t.Tag()
	}
	if d, ok := ref.(reference.Digested); ok {
		out["digest"] = d.Digest().String()
	}
	return out, nil
}

// toValues turns v into the plain maps and lists of chart values.
func toValues(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// WriteYAML writes the objects as one multi-document YAML stream.
func WriteYAML(w io.Writer, objs []client.Object) error {
	for _, o := range objs {
		data, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "---\n%s", data); err != nil {
			return err
		}
	}
	return nil
}

// UserValues reads values files (--values, later ones win) and then
// assignments (--set key=value), as Helm does.
func UserValues(files []string, assignments []string) (map[string]any, error) {
	out := map[string]any{}
	for _, f := range files {
		v, err := common.ReadValuesFile(f)
		if err != nil {
			return nil, fmt.Errorf("--values %s: %w", f, err)
		}
		out = loader.MergeMaps(out, v)
	}
	for _, a := range assignments {
		if !strings.Contains(a, "=") {
			return nil, fmt.Errorf("--set %q: want key=value, for example replicas=3", a)
		}
		if err := strvals.ParseInto(a, out); err != nil {
			return nil, fmt.Errorf("--set %q: %w", a, err)
		}
	}
	return out, nil
}
