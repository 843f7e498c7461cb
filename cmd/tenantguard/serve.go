package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/guard"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

func newServeCommand() *cobra.Command {
	var (
		opts       guard.Options
		configFile string
		kubeconfig string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the admission webhook and the host claim controllers",
		Long: `serve runs the guard in a cluster: the validating admission webhook (HTTPS,
certificate and key from --cert-dir, reloaded when they change), health
endpoints (/healthz, /readyz) and Prometheus metrics (/metrics), and, on the
elected leader, the controllers that release unused host claims and claim the
hosts of objects that predate the guard. Every replica serves the webhook,
leader or not; a replica that loses the lease stops its controllers and
campaigns again.

Run two or more replicas: they share state only through the API server, and
host claims are race-free across them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configFile)
			if err != nil {
				return withExitCode(2, err)
			}
			opts.Config = cfg
			if opts.RestConfig, err = restConfig(kubeconfig); err != nil {
				return withExitCode(2, err)
			}
			if opts.LeaderElectionNamespace == "" {
				opts.LeaderElectionNamespace = cfg.GuardNamespace
			}
			g, err := guard.New(cmd.Context(), opts)
			if err != nil {
				return err
			}
			ctrl.Log.Info("starting tenantguard", "webhook", opts.WebhookAddr, "health", opts.HealthAddr, "metrics", opts.MetricsAddr)
			if err := g.Start(cmd.Context()); err != nil {
				return fmt.Errorf("guard stopped: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "guard configuration file (GuardConfig YAML; default: built-in defaults, see docs/configuration.md)")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default: in-cluster service account, then $KUBECONFIG)")
	f.StringVar(&opts.WebhookAddr, "webhook-bind-address", "0.0.0.0:9443", "host:port of the admission webhook (HTTPS)")
	f.StringVar(&opts.CertDir, "cert-dir", "/etc/tenantguard/tls", "directory with tls.crt and tls.key for the webhook (written by the guard when --cert-secret is set)")
	f.StringVar(&opts.CertSecret, "cert-secret", "", `Secret in the guard namespace where the guard keeps and renews its webhook CA and certificate (the chart sets tenantguard-webhook-tls); "" to bring your own in --cert-dir`)
	f.StringSliceVar(&opts.WebhookConfigurations, "webhook-configurations", []string{"tenantguard"}, "validating or mutating webhook configurations whose caBundle the guard keeps (with --cert-secret)")
	f.StringVar(&opts.WebhookService, "webhook-service", "tenantguard", "the guard's Service; the certificate is for <service>.<namespace>.svc[.cluster.local]")
	f.StringSliceVar(&opts.CertDNSNames, "cert-extra-dns-names", nil, "more DNS names for the serving certificate")
	f.IPSliceVar(&opts.CertIPs, "cert-extra-ips", nil, "IP addresses for the serving certificate")
	f.DurationVar(&opts.CertValidity, "cert-validity", 90*24*time.Hour, "validity of a serving certificate, renewed with a third left; the CA lasts ten times as long")
	f.StringVar(&opts.HealthAddr, "health-bind-address", "0.0.0.0:8081", `host:port of /healthz and /readyz ("0" disables)`)
	f.StringVar(&opts.MetricsAddr, "metrics-bind-address", "0.0.0.0:8080", `host:port of /metrics ("0" disables)`)
	f.StringVar(&opts.PprofAddr, "pprof-bind-address", "0", `host:port of net/http/pprof, for profiling ("0" disables)`)
	f.BoolVar(&opts.LeaderElection, "leader-elect", true, "run the controllers on one replica at a time")
	f.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election lease (default: the configuration's guardNamespace)")
	f.DurationVar(&opts.RequestTimeout, "request-timeout", 8*time.Second, "upper bound on answering one admission request; the guard also answers a margin before the deadline the API server sends (the webhook's timeoutSeconds)")
	f.Float32Var(&opts.KubeAPIQPS, "kube-api-qps", guard.DefaultKubeAPIQPS, "client-side rate limit (requests/s) of the informers, controllers and adopter; a negative value turns it off")
	f.IntVar(&opts.KubeAPIBurst, "kube-api-burst", guard.DefaultKubeAPIBurst, "burst of --kube-api-qps")
	f.Float32Var(&opts.WebhookClientQPS, "webhook-kube-api-qps", -1, "client-side rate limit of the webhook's host claims (and of the claim controller's check of each new claim), each with a limiter of its own; negative (the default) turns it off, so that the API server's priority and fairness (the FlowSchema install renders) bounds it")
	f.IntVar(&opts.WebhookBurst, "webhook-kube-api-burst", 0, "burst of --webhook-kube-api-qps")
	f.Int64Var(&opts.Edge.MaxBodyBytes, "max-request-bytes", webhook.DefaultMaxBodyBytes, "largest AdmissionReview accepted")
	f.IntVar(&opts.Edge.MaxInFlight, "max-requests-inflight", webhook.DefaultMaxInFlight, "admission requests decided at once; more wait, and are refused with a retry message at their deadline")
	f.Int64Var(&opts.Edge.InFlightBytes, "max-inflight-bytes", webhook.DefaultInFlightBytes, "request bodies held at once, in bytes; bounds the webhook's memory whatever is posted to it")
	f.StringVar(&opts.ClientCAFile, "client-ca-file", "", "if set, the webhook requires a client certificate signed by this CA (the API server's; see docs/install.md)")
	f.DurationVar(&opts.AuditInterval, "audit-interval", 10*time.Minute, "time between the leader's periodic audits (tenantguard_violations, and a summary in each Tenant's status); 0 turns them off")
	f.DurationVar(&opts.AdoptInterval, "adopt-interval", time.Minute, "time between passes that claim the hosts of objects without a claim")
	return cmd
}
