// Package guard assembles `tenantguard serve`: the admission webhook, the
// informers that keep its view of the cluster, and the host claim
// controllers, on one controller-runtime manager. Replicas share state only
// through the API server.
package guard

import (
	"context"
	"crypto/tls"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"net"
	"net/http"
	"strconv"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/controller"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/policy"
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
	// HealthAddr serves /healthz and /readyz; MetricsAddr serves /metrics.
	// "0" disables either.
	HealthAddr  string
	MetricsAddr string
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
}

// Guard is a configured, not yet started, guard.
type Guard struct {
	mgr    manager.Manager
	feeder *viewFeeder
	view   *policy.Snapshot
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
	server := crwebhook.NewServer(crwebhook.Options{
		Host: host, Port: port, CertDir: opts.CertDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			// HTTP/1.1 only: it spreads the API server's calls over
			// replicas connection by connection, and keeps the webhook out
			// of HTTP/2 stream floods (CVE-2023-44487).
			c.NextProtos = []string{"http/1.1"}
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
	mgr, err := ctrl.NewManager(opts.RestConfig, manager.Options{
		Scheme:                  kinds.Scheme,
		WebhookServer:           server,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  healthAddr,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        "tenantguard.dev",
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		Logger:                  ctrl.Log.WithName("tenantguard"),
		Controller:              ctrlconfig.Controller{SkipNameValidation: &opts.SharedProcess},
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
	// Claims are read from the API server, never from the cache.
	direct, err := client.New(opts.RestConfig, client.Options{Scheme: kinds.Scheme, Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, err
	}
	claimer := &hosts.Claimer{Client: direct}

	var registry prometheus.Registerer = metrics.Registry
	if opts.SharedProcess {
		registry = prometheus.NewRegistry()
	}
	handler := &webhook.Handler{
		Engine: engine, View: view, Claimer: claimer, Namespaces: direct,
		WaitReady: feeder.waitSynced,
		Metrics:   webhook.NewMetrics(registry),
	}
	hook := &admission.Webhook{Handler: handler}
	// GetWebhookServer (not the server variable) adds it to the manager.
	mgr.GetWebhookServer().Register(webhook.Path, http.TimeoutHandler(hook, opts.RequestTimeout,
		`{"kind":"Status","status":"Failure","message":"tenantguard timed out deciding this request; retry"}`))

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
	rec := &controller.HostClaimReconciler{
		Client: mgr.GetClient(), Engine: engine, Kinds: hostKinds,
		GracePeriod: opts.Config.ClaimGracePeriod.Duration,
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up host claim controller: %w", err)
	}
	adopter := &controller.Adopter{
		Client: mgr.GetClient(), Claimer: claimer, Engine: engine, View: view, Kinds: hostKinds,
		Interval: opts.AdoptInterval, WaitSynced: feeder.waitSynced,
		Recorder: mgr.GetEventRecorder("tenantguard"),
	}
	if err := mgr.Add(adopter); err != nil {
		return nil, err
	}
	if err := mgr.Add(&kindWatch{mapper: mgr.GetRESTMapper(), watching: hostKinds, interval: 30 * time.Second}); err != nil {
		return nil, err
	}
	return &Guard{mgr: mgr, feeder: feeder, view: view}, nil
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
	var out []controller.HostKind
	for _, k := range allHostKinds() {
		_, err := mapper.RESTMapping(k.GVK.GroupKind(), k.GVK.Version)
		switch {
		case meta.IsNoMatchError(err):
			ctrl.LoggerFrom(ctx).Info("kind not served by the cluster; its hosts are not guarded", "kind", k.GVK.String())
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
		now, err := servedHostKinds(ctx, k.mapper)
		if err != nil {
			continue // a passing discovery error; look again later
		}
		if len(now) != len(k.watching) {
			return fmt.Errorf("the cluster now serves %d of the host kinds, not %d (Gateway API installed or removed): restarting to watch them", len(now), len(k.watching))
		}
	}
}
