// Package guard assembles `tenantguard serve`: the admission webhook, the
// informers that keep its view of the cluster, and the host claim
// controllers, on one controller-runtime manager. Replicas share state only
// through the API server.
package guard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/certrotation"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/controller"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/policy"
	"github.com/tenantguard/tenantguard/internal/tenancy"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

// Options configure a guard.
type Options struct {
	RestConfig *rest.Config
	Config     config.Config
	// WebhookAddr is host:port of the admission webhook (HTTPS).
	WebhookAddr string
	// CertDir holds tls.crt and tls.key; they are reloaded when they change.
	CertDir string
	// CertSecret, if set, is a Secret of the guard namespace in which the
	// guard keeps its webhook CA and serving certificate: it creates and
	// renews them, writes them into CertDir and writes the CA into the
	// caBundle of WebhookConfigurations (see internal/certrotation).
	// Empty means CertDir is provided by someone else.
	CertSecret string
	// WebhookService names the guard's Service; the serving certificate
	// is for its DNS names, plus CertDNSNames and CertIPs.
	WebhookService string
	CertDNSNames   []string
	CertIPs        []net.IP
	// WebhookConfigurations are the names of the validating and mutating
	// webhook configurations whose caBundle the guard keeps.
	WebhookConfigurations []string
	// CertValidity of a serving certificate (default 90 days); the CA is
	// valid ten times as long.
	CertValidity time.Duration
	// HealthAddr serves /healthz and /readyz; MetricsAddr serves /metrics.
	// "0" disables either.
	HealthAddr  string
	MetricsAddr string
	// PprofAddr serves net/http/pprof for profiling ("" or "0": off).
	PprofAddr string
	// LeaderElection runs the controllers on one replica at a time.
	LeaderElection          bool
	LeaderElectionNamespace string
	// RequestTimeout bounds one admission request (default 8s, below the
	// API server's 10s webhook timeout).
	RequestTimeout time.Duration
	// SharedProcess is set when several guards run in one process (tests):
	// each gets a private metrics registry, and controller names need not be
	// unique in the process.
	SharedProcess bool
	// AdoptInterval is the time between passes that claim the hosts of
	// existing objects (default 1m).
	AdoptInterval time.Duration
	// Client rate limits of the guard's two API clients, each with its own
	// limiter: the manager's (informers, controllers, the adopter) and the
	// webhook's (host claims on the request path). A QPS below zero turns
	// client-side limiting off; the API server's priority and fairness,
	// through the FlowSchema install renders, then bounds the guard.
	KubeAPIQPS       float32
	KubeAPIBurst     int
	WebhookClientQPS float32
	WebhookBurst     int
	// Edge bounds what callers of the webhook can make it do; see
	// webhook.Edge. Zero values take its defaults.
	Edge webhook.EdgeLimits
	// AuditInterval is the time between periodic audits on the leader
	// (0 turns them off).
	AuditInterval time.Duration
	// ClientCAFile, if set, makes the webhook require a client certificate
	// signed by this CA (the API server's, see docs/install.md).
	ClientCAFile string
}

// Client defaults: high enough that a claim never waits on client-go.
const (
	DefaultKubeAPIQPS   = 200
	DefaultKubeAPIBurst = 400
)

// Guard is a configured, not yet started, guard.
type Guard struct {
	mgr         manager.Manager
	feeder      *viewFeeder
	view        *policy.Snapshot
	controllers *controllers
}

// New builds a guard. Start runs it.
func New(ctx context.Context, opts Options) (*Guard, error) {
	host, portText, err := net.SplitHostPort(opts.WebhookAddr)
	if err != nil {
		return nil, fmt.Errorf("webhook address %q: %w (want host:port, e.g. 0.0.0.0:9443)", opts.WebhookAddr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("webhook address %q: bad port", opts.WebhookAddr)
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 8 * time.Second
	}
	clientCAs, err := loadClientCAs(opts.ClientCAFile)
	if err != nil {
		return nil, err
	}
	server := crwebhook.NewServer(crwebhook.Options{
		Host: host, Port: port, CertDir: opts.CertDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			// HTTP/1.1 only: it spreads the API server's calls over
			// replicas connection by connection, and keeps the webhook out
			// of HTTP/2 stream floods (CVE-2023-44487).
			c.NextProtos = []string{"http/1.1"}
			if clientCAs != nil {
				c.ClientCAs = clientCAs
				c.ClientAuth = tls.RequireAndVerifyClientCert
			}
		}},
	})
	metricsAddr := opts.MetricsAddr
	if metricsAddr == "" {
		metricsAddr = "0"
	}
	healthAddr := opts.HealthAddr
	if healthAddr == "" {
		healthAddr = "0"
	}
	base := withRateLimit(opts.RestConfig, opts.KubeAPIQPS, opts.KubeAPIBurst)
	// The tenant controller's objects are cached only when it manages them.
	managed, err := labels.Parse(tenancy.ManagedLabel)
	if err != nil {
		return nil, err
	}
	byObject := map[client.Object]cache.ByObject{}
	for _, o := range controller.ManagedObjects() {
		byObject[o] = cache.ByObject{Label: managed}
	}
	// The webhook, health and metrics serve on every replica, leader or
	// not: this manager never campaigns. The controllers run under their
	// own leader-elected manager (see controllers).
	mgr, err := ctrl.NewManager(base, manager.Options{
		Scheme:                 kinds.Scheme,
		WebhookServer:          server,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: healthAddr,
		PprofBindAddress:       opts.PprofAddr,
		Logger:                 ctrl.Log.WithName("tenantguard"),
		Controller:             ctrlconfig.Controller{SkipNameValidation: &opts.SharedProcess},
		Cache:                  cache.Options{ByObject: byObject, DefaultTransform: trimForCache(allHostKinds())},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}

	engine := policy.NewEngine(opts.Config)
	view := policy.NewSnapshot()
	hostKinds, err := servedHostKinds(ctx, mgr.GetRESTMapper())
	if err != nil {
		return nil, err
	}
	feeder, err := feedView(ctx, mgr.GetCache(), hostKinds, engine, view)
	if err != nil {
		return nil, err
	}
	// Claims are read from the API server, never from the cache, through a
	// client of the webhook's own, so that no controller traffic can make
	// a request wait.
	var registry prometheus.Registerer = metrics.Registry
	if opts.SharedProcess {
		registry = prometheus.NewRegistry()
	}
	webhookConfig := countRequests(withRateLimit(opts.RestConfig, opts.WebhookClientQPS, opts.WebhookBurst), registry)
	direct, err := client.New(webhookConfig, client.Options{Scheme: kinds.Scheme, Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, err
	}
	claimer := &hosts.Claimer{Client: direct}
	if opts.CertSecret != "" {
		if err := addCertRotation(ctx, mgr, direct, opts); err != nil {
			return nil, err
		}
	}

	handlerMetrics := webhook.NewMetrics(registry)
	violations := controller.NewViolationsGauge(registry)
	refusals := &controller.Refusals{Client: direct, Reader: direct}
	if err := mgr.Add(refusals); err != nil {
		return nil, err
	}
	handler := &webhook.Handler{
		Engine: engine, View: view, Claimer: claimer, Namespaces: direct,
		WaitReady: feeder.waitSynced,
		Metrics:   handlerMetrics,
		Recorder:  mgr.GetEventRecorder("tenantguard-webhook"),
		TenantUID: func(name string) types.UID {
			t := &v1alpha1.Tenant{}
			if err := mgr.GetCache().Get(ctx, client.ObjectKey{Name: name}, t); err != nil {
				return ""
			}
			return t.UID
		},
		Refusals: refusals,
	}
	// Namespaces tenant owners create are decided from the serving
	// manager's cache (IndexTenants below registers its indexes), on every
	// replica.
	decideNamespace := func(ctx context.Context, u tenancy.User, ns *corev1.Namespace) (tenancy.NamespaceDecision, error) {
		return controller.DecideNamespace(ctx, mgr.GetClient(), u, ns)
	}
	handler.DecideNamespace = decideNamespace
	// One edge in front of both webhooks, so that its bounds on bodies
	// and requests in flight hold for the two together.
	hooks := http.NewServeMux()
	hooks.Handle(webhook.Path, &admission.Webhook{Handler: handler})
	hooks.Handle(webhook.MutatePath, &admission.Webhook{Handler: &webhook.NamespaceHandler{
		Decide: decideNamespace, IsAdmin: engine.IsAdmin,
		WaitReady: func(ctx context.Context) error {
			if !mgr.GetCache().WaitForCacheSync(ctx) {
				return fmt.Errorf("caches did not sync: %w", ctx.Err())
			}
			return nil
		},
		Metrics: handlerMetrics, Refusals: refusals,
	}})
	edge := &webhook.Edge{
		Next:    hooks,
		Limits:  opts.Edge,
		Timeout: opts.RequestTimeout,
		Metrics: handlerMetrics,
	}
	// GetWebhookServer (not the server variable) adds them to the manager.
	mgr.GetWebhookServer().Register(webhook.Path, edge)
	mgr.GetWebhookServer().Register(webhook.MutatePath, edge)

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", server.StartedChecker()); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("informers", func(*http.Request) error {
		if !feeder.synced() {
			return fmt.Errorf("informers have not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}

	if err := controller.IndexHostObjects(ctx, mgr, engine, hostKinds); err != nil {
		return nil, err
	}
	// Once, on the shared cache: the terms' managers reuse it.
	if err := controller.IndexTenants(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	cfg := opts.Config
	// The adopter claims with a client of its own: it claims at the API
	// server's pace without taking the webhook's.
	adoptClient, err := client.New(base, client.Options{Scheme: kinds.Scheme, Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, err
	}
	// The claim controller's check of each new claim before it settles it
	// finishes the webhook's work, so it reads at the webhook's pace (the
	// webhook's limits, a limiter of its own), not the controllers'.
	checkClient, err := client.New(withRateLimit(opts.RestConfig, opts.WebhookClientQPS, opts.WebhookBurst),
		client.Options{Scheme: kinds.Scheme, Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, err
	}
	ctrls := &controllers{
		config: base, cache: mgr.GetCache(), elect: opts.LeaderElection,
		namespace: opts.LeaderElectionNamespace,
		setup: func(cm manager.Manager) error {
			rec := &controller.HostClaimReconciler{
				Client: cm.GetClient(), Reader: checkClient, Engine: engine, Kinds: hostKinds,
				GracePeriod: opts.Config.ClaimGracePeriod.Duration,
			}
			if err := rec.SetupWithManager(cm); err != nil {
				return fmt.Errorf("set up host claim controller: %w", err)
			}
			tenants := &controller.TenantReconciler{Client: cm.GetClient(), Reader: cm.GetAPIReader(),
				Recorder: cm.GetEventRecorder("tenantguard"),
				Options:  tenancy.Options{IngressNamespaces: cfg.IngressNamespaces, IngressCIDRs: cfg.IngressCIDRs, Excluded: cfg.Excluded}}
			if err := tenants.SetupWithManager(cm); err != nil {
				return fmt.Errorf("set up tenant controller: %w", err)
			}
			if opts.AuditInterval > 0 {
				if err := cm.Add(&controller.Auditor{Reader: cm.GetAPIReader(), Client: cm.GetClient(), Engine: engine,
					Interval: opts.AuditInterval, Gauge: violations}); err != nil {
					return err
				}
			}
			return cm.Add(&controller.Adopter{
				Client: cm.GetClient(), Claimer: &hosts.Claimer{Client: adoptClient}, Engine: engine, View: view, Kinds: hostKinds,
				Interval: opts.AdoptInterval, WaitSynced: feeder.waitSynced,
				Recorder: cm.GetEventRecorder("tenantguard"),
			})
		},
	}
	if err := mgr.Add(ctrls); err != nil {
		return nil, err
	}
	if err := mgr.Add(&kindWatch{mapper: mgr.GetRESTMapper(), watching: hostKinds, interval: 30 * time.Second}); err != nil {
		return nil, err
	}
	return &Guard{mgr: mgr, feeder: feeder, view: view, controllers: ctrls}, nil
}

// addCertRotation keeps the webhook certificates in opts.CertSecret. The
// first pass runs now: the webhook server needs the files to start.
func addCertRotation(ctx context.Context, mgr manager.Manager, direct client.Client, opts Options) error {
	service := opts.WebhookService
	if service == "" {
		service = "tenantguard"
	}
	rot, err := certrotation.New(certrotation.Options{
		Client: direct, Namespace: opts.Config.GuardNamespace, SecretName: opts.CertSecret,
		DNSNames:              append(certrotation.ServiceDNSNames(service, opts.Config.GuardNamespace), opts.CertDNSNames...),
		IPs:                   opts.CertIPs,
		CertDir:               opts.CertDir,
		WebhookConfigurations: opts.WebhookConfigurations,
		Validity:              opts.CertValidity,
	})
	if err != nil {
		return err
	}
	if err := rot.Sync(ctx); err != nil {
		return fmt.Errorf("webhook certificates: %w", err)
	}
	if err := mgr.Add(rot); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("certificates", rot.Ready)
}

// withRateLimit returns a copy of cfg with its own client-side rate
// limiter (none when qps < 0; client-go's defaults when both are zero).
func withRateLimit(cfg *rest.Config, qps float32, burst int) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.RateLimiter = nil
	if qps != 0 {
		c.QPS = qps
	}
	if burst != 0 {
		c.Burst = burst
	}
	return c
}

func loadClientCAs(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--client-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--client-ca-file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// Start runs the guard until ctx ends.
func (g *Guard) Start(ctx context.Context) error { return g.mgr.Start(ctx) }

// WaitReady blocks until the guard's view reflects the cluster.
func (g *Guard) WaitReady(ctx context.Context) error {
	if !g.mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("caches did not sync: %w", ctx.Err())
	}
	return g.feeder.waitSynced(ctx)
}

// View returns the guard's view of the cluster (for tests and benchmarks).
func (g *Guard) View() *policy.Snapshot { return g.view }

// allHostKinds are the kinds whose objects use hosts: Ingress, the Gateway
// API routes with hostnames, and Gateways and ListenerSets (their
// listeners' hostnames).
func allHostKinds() []controller.HostKind {
	gw := func(kind string, obj client.Object, list func() client.ObjectList) controller.HostKind {
		return controller.HostKind{GVK: kinds.GatewayV1.WithKind(kind), Object: obj, NewList: list}
	}
	return []controller.HostKind{
		{GVK: networkingv1.SchemeGroupVersion.WithKind("Ingress"), Object: &networkingv1.Ingress{}, NewList: func() client.ObjectList { return &networkingv1.IngressList{} }},
		gw("HTTPRoute", &gatewayv1.HTTPRoute{}, func() client.ObjectList { return &gatewayv1.HTTPRouteList{} }),
		gw("GRPCRoute", &gatewayv1.GRPCRoute{}, func() client.ObjectList { return &gatewayv1.GRPCRouteList{} }),
		gw("TLSRoute", &gatewayv1.TLSRoute{}, func() client.ObjectList { return &gatewayv1.TLSRouteList{} }),
		gw("Gateway", &gatewayv1.Gateway{}, func() client.ObjectList { return &gatewayv1.GatewayList{} }),
		gw("ListenerSet", &gatewayv1.ListenerSet{}, func() client.ObjectList { return &gatewayv1.ListenerSetList{} }),
	}
}

// servedHostKinds are the host kinds the cluster serves; the Gateway API
// kinds are passed over, with a log line, where it is not installed. Any
// other discovery error is returned: guarding a kind without watching it
// would release its hosts while they are in use.
func servedHostKinds(ctx context.Context, mapper meta.RESTMapper) ([]controller.HostKind, error) {
	return hostKindsServed(mapper, func(k controller.HostKind) {
		ctrl.LoggerFrom(ctx).Info("kind not served by the cluster; its hosts are not guarded", "kind", k.GVK.String())
	})
}

// hostKindsServed is servedHostKinds that tells missing kinds to missing
// instead of the log: the periodic look says a missing kind only when the
// set changes.
func hostKindsServed(mapper meta.RESTMapper, missing func(controller.HostKind)) ([]controller.HostKind, error) {
	var out []controller.HostKind
	for _, k := range allHostKinds() {
		_, err := mapper.RESTMapping(k.GVK.GroupKind(), k.GVK.Version)
		switch {
		case meta.IsNoMatchError(err):
			missing(k)
		case err != nil:
			return nil, fmt.Errorf("discover %s: %w", k.GVK.Kind, err)
		default:
			out = append(out, k)
		}
	}
	return out, nil
}

// kindWatch ends the guard when the set of served host kinds changes (the
// Gateway API installed or removed after it started), so that it restarts
// and watches what the cluster now serves. Without it, the hosts of a
// newly served kind would be claimed by the webhook and released by the
// controller, which cannot see their users.
type kindWatch struct {
	mapper   meta.RESTMapper
	watching []controller.HostKind
	interval time.Duration
}

func (k *kindWatch) NeedLeaderElection() bool { return false }

func (k *kindWatch) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(k.interval):
		}
		now, err := hostKindsServed(k.mapper, func(controller.HostKind) {})
		if err != nil {
			continue // a passing discovery error; look again later
		}
		if len(now) != len(k.watching) {
			return fmt.Errorf("the cluster now serves %d of the host kinds, not %d (Gateway API installed or removed): restarting to watch them", len(now), len(k.watching))
		}
	}
}

// lastApplied is the annotation kubectl apply keeps a copy of the object in.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// trimForCache drops from what the guard caches what it never reads: every
// object's field managers (often a third or more of an object), and for the
// kinds that use hosts, which it never writes, kubectl apply's copy of the
// object in an annotation and an Ingress's status. An update of a cached
// object sent without its field managers keeps them: the API server never
// drops them for a client that leaves them out.
func trimForCache(hostKinds []controller.HostKind) toolscache.TransformFunc {
	hostTypes := map[reflect.Type]bool{}
	for _, k := range hostKinds {
		hostTypes[reflect.TypeOf(k.Object)] = true
	}
	stripManagedFields := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		obj, err := stripManagedFields(obj)
		if err != nil || !hostTypes[reflect.TypeOf(obj)] {
			return obj, err
		}
		if o, ok := obj.(client.Object); ok {
			if a := o.GetAnnotations(); a[lastApplied] != "" {
				delete(a, lastApplied)
				o.SetAnnotations(a)
			}
		}
		if ing, ok := obj.(*networkingv1.Ingress); ok {
			ing.Status = networkingv1.IngressStatus{}
		}
		return obj, nil
	}
}
