// Package replay replays the field's five problems against a local control
// plane with the guard installed: the doctor against a simulated corporate
// network for problems 1 and 2, the example manifests as tenant developers
// for problems 3 to 5. `tenantguard dev` runs it.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/examples"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/doctor"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/manifest"
	"github.com/tenantguard/tenantguard/internal/tenancy"
)

// Outcome is what happened to one replayed request.
type Outcome struct {
	Problem string
	Object  string
	User    string
	Allowed bool
	// Message is the API server's answer when refused.
	Message string
}

// Examples is the set-up `dev` made: a kubeconfig per tenant developer.
type Examples struct {
	Tenants     []*v1alpha1.Tenant
	Kubeconfigs map[string]string // tenant name -> kubeconfig path
	users       map[string]*rest.Config
}

// SetUpExamples creates the example Tenants and a developer user in each
// tenant's owner group, and writes a kubeconfig for each developer into
// dir. Everything else comes from the Tenants alone: the guard's tenant
// controller creates and labels their namespaces and binds the owners to
// the tenant-admin role there; SetUpExamples waits until it has.
func SetUpExamples(ctx context.Context, e *devenv.Env, dir string) (*Examples, error) {
	c, err := client.New(e.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		return nil, err
	}
	objs, err := embedded("tenants")
	if err != nil {
		return nil, err
	}
	ex := &Examples{Kubeconfigs: map[string]string{}, users: map[string]*rest.Config{}}
	// The roles install renders (the chart's tenant-roles.yaml).
	for _, r := range []*rbacv1.ClusterRole{tenancy.TenantAdminClusterRole(), tenancy.NamespaceCreatorClusterRole()} {
		if err := createOrKeep(ctx, c, r); err != nil {
			return nil, err
		}
	}
	for _, o := range objs {
		t, ok := o.Object.(*v1alpha1.Tenant)
		if !ok {
			continue
		}
		ex.Tenants = append(ex.Tenants, t.DeepCopy())
		if err := createOrKeep(ctx, c, t); err != nil {
			return nil, fmt.Errorf("create tenant %s: %w", t.Name, err)
		}
		// The examples' owners are the groups <tenant>-devs.
		cfg, err := e.AddUser(t.Name+"-dev", t.Name+"-devs")
		if err != nil {
			return nil, err
		}
		ex.users[t.Name] = cfg
		path := filepath.Join(dir, t.Name+".kubeconfig")
		if err := devenv.WriteKubeconfig(path, cfg, t.Name+"-dev"); err != nil {
			return nil, err
		}
		ex.Kubeconfigs[t.Name] = path
	}
	// Wait until the tenant controller has made the namespaces and
	// bindings, RBAC reaches the authorizer, and the guard sees the tenants.
	for _, t := range ex.Tenants {
		uc, err := client.New(ex.users[t.Name], client.Options{Scheme: kinds.Scheme})
		if err != nil {
			return nil, err
		}
		for _, ns := range t.Spec.Namespaces {
			if err := poll(ctx, func() error { return uc.List(ctx, &corev1.ServiceList{}, client.InNamespace(ns)) }); err != nil {
				return nil, fmt.Errorf("developer of %s cannot work in %s: %w", t.Name, ns, err)
			}
		}
	}
	return ex, nil
}

// Manifests applies the example manifests in order, each as the
// developer of the tenant that owns its namespace, and reports each answer.
func Manifests(ctx context.Context, ex *Examples, out io.Writer) ([]Outcome, error) {
	objs, err := embedded("manifests")
	if err != nil {
		return nil, err
	}
	tenantOf := map[string]string{}
	for _, t := range ex.Tenants {
		for _, ns := range t.Spec.Namespaces {
			tenantOf[ns] = t.Name
		}
	}
	clients := map[string]client.Client{}
	var outcomes []Outcome
	lastFile := ""
	for _, o := range objs {
		obj, ok := o.Object.(client.Object)
		if !ok {
			continue
		}
		if o.File != lastFile {
			lastFile = o.File
			fmt.Fprintf(out, "\n%s\n", problemTitle(o.File))
		}
		tenant := tenantOf[obj.GetNamespace()]
		c := clients[tenant]
		if c == nil {
			if c, err = client.New(ex.users[tenant], client.Options{Scheme: kinds.Scheme}); err != nil {
				return nil, err
			}
			clients[tenant] = c
		}
		oc := Outcome{Problem: problemTitle(o.File), Object: fmt.Sprintf("%s %s/%s", o.GVK.Kind, obj.GetNamespace(), obj.GetName()), User: tenant + "-dev"}
		err := c.Create(ctx, obj)
		switch {
		case err == nil:
			oc.Allowed = true
			fmt.Fprintf(out, "  allowed  %s (as %s)\n", oc.Object, oc.User)
		case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "tenantguard refused"):
			oc.Message = err.Error()
			fmt.Fprintf(out, "  refused  %s (as %s)\n", oc.Object, oc.User)
			for _, line := range strings.Split(refusal(err.Error()), "\n") {
				fmt.Fprintf(out, "           %s\n", line)
			}
		default:
			return outcomes, fmt.Errorf("replay %s: %w", oc.Object, err)
		}
		outcomes = append(outcomes, oc)
	}
	return outcomes, nil
}

// refusal keeps the guard's own words from an API error.
func refusal(msg string) string {
	if i := strings.Index(msg, "tenantguard refused"); i >= 0 {
		msg = msg[i:]
	}
	_, rest, found := strings.Cut(msg, "\n")
	if !found {
		return msg
	}
	return strings.TrimPrefix(strings.ReplaceAll(rest, "\n- ", "\n"), "- ")
}

func problemTitle(file string) string {
	switch {
	case strings.Contains(file, "problem3"):
		return "Problem 3: tenants create cloud resources by accident"
	case strings.Contains(file, "problem4"):
		return "Problem 4: a later Ingress takes another app's host"
	case strings.Contains(file, "problem5"):
		return "Problem 5: tenants run only their own images"
	}
	return "Set-up: project1's shop, as it should be"
}

// PrivateName is the AKS-style private FQDN `dev` gives its API server in
// the replay of problems 1 and 2.
const PrivateName = "tg-dev-4a1b2c3d.0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.privatelink.westeurope.azmk8s.io"

// Doctor replays problems 1 and 2 with the real doctor against the
// real API server, reached by its private name through CorpNet, and prints
// the failing steps with their fixes. It returns the two reports.
func Doctor(ctx context.Context, e *devenv.Env, dir string, out io.Writer) ([]*doctor.Report, error) {
	net, err := StartCorpNet(PrivateName)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	cfg := rest.CopyConfig(e.Config)
	port := cfg.Host[strings.LastIndex(cfg.Host, ":"):]
	cfg.Host = "https://" + PrivateName + strings.TrimSuffix(port, "/")
	cfg.TLSClientConfig.ServerName = "localhost" // the local API server's certificate; in AKS the name itself
	path := filepath.Join(dir, "aks-private.kubeconfig")
	if err := devenv.WriteKubeconfig(path, cfg, "aks-private"); err != nil {
		return nil, err
	}
	noProxy := ".corp.example,10.0.0.0/8,localhost"
	runs := []struct {
		title string
		opts  doctor.Options
		env   map[string]string
	}{
		{"Problem 1: the private API server name does not resolve on the corporate DNS",
			doctor.Options{Resolver: Resolver(net.OnPremDNS), DNSServers: []string{net.AzureDNS}}, nil},
		{"Problem 2: kubectl sends API traffic to the corporate proxy",
			doctor.Options{Resolver: Resolver(net.AzureDNS)}, map[string]string{"HTTPS_PROXY": net.Proxy, "NO_PROXY": noProxy}},
	}
	var reports []*doctor.Report
	for _, r := range runs {
		r.opts.Kubeconfig = path
		r.opts.Timeout = 3 * time.Second
		env := r.env
		r.opts.Getenv = func(k string) string { return env[k] }
		rep, err := doctor.Run(ctx, r.opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.title, err)
		}
		reports = append(reports, rep)
		fmt.Fprintf(out, "\n%s\n  tenantguard doctor --kubeconfig %s", r.title, path)
		if len(r.opts.DNSServers) > 0 {
			fmt.Fprintf(out, " --dns-server %s", strings.Join(r.opts.DNSServers, ","))
		}
		fmt.Fprintf(out, "\n")
		for _, s := range rep.Steps {
			if s.Status == doctor.StatusFail {
				for _, line := range strings.Split(strings.TrimRight(s.Text(), "\n"), "\n") {
					fmt.Fprintf(out, "  %s\n", line)
				}
			}
		}
	}
	return reports, nil
}

func embedded(dir string) ([]manifest.Object, error) {
	var out []manifest.Object
	err := fs.WalkDir(examples.FS, dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(examples.FS, path)
		if err != nil {
			return err
		}
		objs, err := manifest.Parse("examples/"+path, data)
		if err != nil {
			return err
		}
		out = append(out, objs...)
		return nil
	})
	return out, err
}

func createOrKeep(ctx context.Context, c client.Client, obj client.Object) error {
	err := c.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// poll retries f until it succeeds or a minute passes.
func poll(ctx context.Context, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
