package devenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/config/crd"
	"github.com/tenantguard/tenantguard/config/gatewayapi"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/guard"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

// AllCRDs returns tenantguard's CRDs and the Gateway API's, for Options.CRDs.
func AllCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	own, err := crd.CRDs()
	if err != nil {
		return nil, err
	}
	gw, err := gatewayapi.CRDs()
	if err != nil {
		return nil, err
	}
	return append(own, gw...), nil
}

// GuardOptions configure a guard run in this process.
type GuardOptions struct {
	Config config.Config
	// Dir receives the webhook's serving certificate.
	Dir string
	// WebhookName is the name of the ValidatingWebhookConfiguration
	// (default tenantguard). Two guards behind one configuration share it.
	WebhookName string
	// URL overrides the webhook URL the API server calls (a load balancer
	// in front of several guards); default the guard's own address.
	URL string
	// SkipRegistration leaves the webhook configuration alone.
	SkipRegistration bool
	// CertDir reuses the certificates of another guard (for a second
	// replica); default: new ones in Dir.
	CertDir string
	// RestConfig is the guard's identity (default: the admin's).
	RestConfig *rest.Config
	// AdoptInterval, RequestTimeout: see guard.Options.
	AdoptInterval  time.Duration
	RequestTimeout time.Duration
	// LeaderElection for the controllers (several replicas).
	LeaderElection bool
}

// RunningGuard is a guard serving on loopback.
type RunningGuard struct {
	// Addr is the webhook's host:port; CertDir holds tls.crt, tls.key, ca.crt.
	Addr    string
	CertDir string
	Guard   *guard.Guard
	cancel  context.CancelFunc
	done    chan error
}

// Stop stops the guard and waits for it.
func (g *RunningGuard) Stop() error {
	g.cancel()
	err := <-g.done
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// StartGuard runs the admission webhook and controllers in this process
// against the control plane, registers the webhook configuration and waits
// until the API server calls it.
func (e *Env) StartGuard(ctx context.Context, opts GuardOptions) (*RunningGuard, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	certDir := opts.CertDir
	if certDir == "" {
		certDir = filepath.Join(opts.Dir, "webhook-certs")
		certs, err := webhook.SelfSignedCertificates([]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, 365*24*time.Hour)
		if err != nil {
			return nil, err
		}
		if err := certs.WriteFiles(certDir); err != nil {
			return nil, err
		}
	}
	restConfig := opts.RestConfig
	if restConfig == nil {
		restConfig = e.Config
	}
	leaseNamespace := opts.Config.GuardNamespace
	if !opts.LeaderElection {
		leaseNamespace = ""
	}
	runCtx, cancel := context.WithCancel(context.Background())
	g, err := guard.New(runCtx, guard.Options{
		RestConfig: restConfig, Config: opts.Config, WebhookAddr: addr, CertDir: certDir,
		HealthAddr: "0", MetricsAddr: "0", AdoptInterval: opts.AdoptInterval, RequestTimeout: opts.RequestTimeout,
		LeaderElection: opts.LeaderElection, LeaderElectionNamespace: leaseNamespace,
		SharedProcess: true,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	rg := &RunningGuard{Addr: addr, CertDir: certDir, Guard: g, cancel: cancel, done: make(chan error, 1)}
	go func() { rg.done <- g.Start(runCtx) }()
	waitCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	// A guard that fails to start ends the wait with its error.
	var startErr error
	go func() {
		select {
		case err := <-rg.done:
			startErr = err
			rg.done <- err
			stop()
		case <-waitCtx.Done():
		}
	}()
	fail := func(err error) error {
		if startErr != nil {
			err = fmt.Errorf("guard stopped: %w", startErr)
		}
		_ = rg.Stop()
		return err
	}
	if err := g.WaitReady(waitCtx); err != nil {
		return nil, fail(fmt.Errorf("guard did not become ready: %w", err))
	}
	if opts.SkipRegistration {
		return rg, nil
	}
	url := opts.URL
	if url == "" {
		url = "https://" + addr + webhook.Path
	}
	if err := e.RegisterWebhook(waitCtx, opts.Config, opts.WebhookName, url, filepath.Join(certDir, "ca.crt")); err != nil {
		return nil, fail(err)
	}
	return rg, nil
}

// RegisterWebhook creates (or replaces) the webhook configurations
// pointing the API server at url (the validating webhooks) and at url's
// host with path webhook.MutatePath (the namespace creation webhook), and
// waits until the API server calls the guard.
func (e *Env) RegisterWebhook(ctx context.Context, cfg config.Config, name, url, caFile string) error {
	ca, err := readFile(caFile)
	if err != nil {
		return err
	}
	c, err := client.New(e.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		return err
	}
	opts := webhook.ConfigurationOptions{Name: name, URL: url, CABundle: ca}
	// The mutating one first: the wait below probes the validating one
	// only (the mutating webhook never sees an admin's request).
	mwc := webhook.MutatingConfiguration(cfg, opts)
	if err := createOrReplace(ctx, c, mwc, &admissionregistrationv1.MutatingWebhookConfiguration{}); err != nil {
		return err
	}
	vwc := webhook.Configuration(cfg, opts)
	if err := createOrReplace(ctx, c, vwc, &admissionregistrationv1.ValidatingWebhookConfiguration{}); err != nil {
		return err
	}
	return waitForWebhook(ctx, c, cfg)
}

// createOrReplace creates obj, or replaces the object of its name (read
// into existing).
func createOrReplace(ctx context.Context, c client.Client, obj, existing client.Object) error {
	kind := fmt.Sprintf("%T", obj)
	kind = kind[strings.LastIndex(kind, ".")+1:]
	switch err := c.Get(ctx, client.ObjectKey{Name: obj.GetName()}, existing); {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("create %s %s: %w", kind, obj.GetName(), err)
		}
	case err != nil:
		return fmt.Errorf("read %s %s: %w", kind, obj.GetName(), err)
	default:
		obj.SetResourceVersion(existing.GetResourceVersion())
		if err := c.Update(ctx, obj); err != nil {
			return fmt.Errorf("update %s %s: %w", kind, obj.GetName(), err)
		}
	}
	return nil
}

// waitForWebhook sends a dry-run Tenant that the guard refuses, until the
// refusal comes back: then the API server calls the webhook.
func waitForWebhook(ctx context.Context, c client.Client, cfg config.Config) error {
	probe := &v1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "webhook-probe-"},
		Spec:       v1alpha1.TenantSpec{Namespaces: []string{cfg.ExcludedNamespaces[0]}},
	}
	for {
		err := c.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), "tenantguard refused") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the API server does not call the webhook yet (last answer: %v): %w", err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
