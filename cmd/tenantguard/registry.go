package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tenantguard/tenantguard/internal/registry"
	"github.com/tenantguard/tenantguard/internal/registry/gateway"
	"github.com/tenantguard/tenantguard/internal/registry/token"
)

func newRegistryCommand() *cobra.Command {
	var (
		cfg        registry.Config
		kubeconfig string
		inCluster  bool
		auditLog   string
	)
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run the registry gateway: per-tenant repository rights and immutable tags in front of any OCI registry",
		Long: `registry runs an OCI distribution reverse proxy with Docker/OCI token
authentication in front of a registry (CNCF Distribution, Harbor, Zot, ACR).

Tenants log in with a robot account (--robots) or a Kubernetes service
account token (with --kubeconfig or --in-cluster; the namespace's
tenantguard.dev/tenant label names the tenant), and get tokens for the
repositories their Tenant's spec.registry grants (project1/*, project1/**).
Tags matching spec.registry.immutableTags can be neither moved nor deleted.
The gateway reaches the upstream with its own credentials, which tenants
never see.

Files (tenants, robots, signing keys, TLS, upstream secrets) are re-read
when they change, so mounted Secrets and ConfigMaps rotate without a
restart. See docs/registry.md.`,
		Example: `  tenantguard registry --upstream https://myacr.azurecr.io \
    --upstream-username tenantguard --upstream-password-file /secrets/acr/password \
    --tenants /config/tenants.yaml --robots /secrets/robots/robots.yaml \
    --signing-keys /secrets/signing-keys \
    --addr 0.0.0.0:5000 --token-addr 0.0.0.0:5000 --realm https://registry.example.com/token \
    --tls-cert-file /tls/tls.crt --tls-key-file /tls/tls.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.TenantsFile == "" && kubeconfig == "" && !inCluster {
				return withExitCode(2, errors.New("no tenant rules: give --tenants <file>, or --kubeconfig/--in-cluster to watch Tenants"))
			}
			if kubeconfig != "" && inCluster {
				return withExitCode(2, errors.New("give --kubeconfig or --in-cluster, not both"))
			}
			var err error
			if cfg.Kube, err = registryRESTConfig(kubeconfig, inCluster); err != nil {
				return withExitCode(2, err)
			}
			audit, closeAudit, err := auditLogger(cmd, auditLog)
			if err != nil {
				return withExitCode(2, err)
			}
			defer closeAudit()
			cfg.Audit = audit
			cfg.Log = slog.Default().With("component", "registry")

			ctx := cmd.Context()
			srv, err := registry.Start(ctx, cfg)
			if err != nil {
				return err
			}
			select {
			case <-ctx.Done():
			case err = <-srv.Err():
			}
			shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return errors.Join(err, srv.Close(shutdown))
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", registry.DefaultAddr, "address of the registry listener (host:port; 0.0.0.0:5000 for all interfaces)")
	f.StringVar(&cfg.TokenAddr, "token-addr", registry.DefaultTokenAddr, "address of the token endpoint's listener; the same as --addr serves both on one listener")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", registry.DefaultMetricsAddr, "address of the /metrics, /healthz and /readyz listener; empty turns it off")
	f.StringVar(&cfg.TLSCertFile, "tls-cert-file", "", "TLS certificate (PEM) of the registry and token listeners; without it they serve plain HTTP")
	f.StringVar(&cfg.TLSKeyFile, "tls-key-file", "", "TLS private key (PEM)")
	f.StringVar(&cfg.Realm, "realm", "", "token endpoint URL as clients reach it, for the WWW-Authenticate challenge (default: the token listener's address + /token)")
	f.StringVar(&cfg.Service, "service", registry.DefaultService, "service name in challenges, and the audience of the tokens")
	f.StringVar(&cfg.Issuer, "issuer", registry.DefaultIssuer, "issuer (iss) of the tokens")
	f.DurationVar(&cfg.TokenTTL, "token-ttl", token.DefaultTTL, "lifetime of the tokens")
	f.StringVar(&cfg.SigningKeyDir, "signing-keys", "", "directory of PEM signing keys (EC P-256, RSA or Ed25519; the last private key by file name signs, all verify; PUBLIC KEY files only verify). Empty: a key generated at start, for one replica only")
	f.StringVar(&cfg.Upstream, "upstream", "", "URL of the upstream registry (https://myacr.azurecr.io) (required)")
	f.StringVar(&cfg.UpstreamUsername, "upstream-username", "", "the gateway's user name at the upstream (basic auth, or exchanged for upstream tokens)")
	f.StringVar(&cfg.UpstreamPasswordFile, "upstream-password-file", "", "file holding the gateway's password at the upstream")
	f.StringVar(&cfg.UpstreamTokenFile, "upstream-token-file", "", "file holding a bearer token for the upstream (instead of a user name and password)")
	f.StringVar(&cfg.UpstreamCAFile, "upstream-ca-file", "", "extra CA certificates (PEM) to trust for the upstream")
	f.StringVar(&cfg.TenantsFile, "tenants", "", "file of Tenant objects (YAML or JSON; a Tenant, a TenantList, a List, or several documents). Without it, Tenants are watched in the cluster")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster: service account logins (TokenReview), namespace tenants, and Tenants when --tenants is not given")
	f.BoolVar(&inCluster, "in-cluster", false, "use the pod's service account to reach the cluster (instead of --kubeconfig)")
	f.StringSliceVar(&cfg.ServiceAccountAudiences, "serviceaccount-audience", nil, "audience service account tokens must carry (repeatable), e.g. tenantguard-registry; default: the API server's")
	f.StringVar(&cfg.RobotsFile, "robots", "", "robot accounts file (YAML: robots: [{name, tenant, passwordHash (bcrypt), actions}]); a mounted Secret works")
	f.StringVar(&cfg.LockNamespace, "lock-namespace", "", "namespace for the Leases that serialize pushes of the same immutable tag across replicas (needs --kubeconfig or --in-cluster); empty: per-replica locks")
	f.StringVar(&cfg.LockHolder, "lock-holder", os.Getenv("POD_NAME"), "this replica's name in its Leases (default $POD_NAME, else the host name)")
	f.Int64Var(&cfg.MaxManifestBytes, "max-manifest-bytes", gateway.DefaultMaxManifestBytes, "largest manifest accepted")
	f.DurationVar(&cfg.ReloadInterval, "reload-interval", registry.DefaultReloadInterval, "how often the files are checked for changes")
	f.StringVar(&auditLog, "audit-log", "-", "where the audit log (JSON lines) goes: - for stdout, or a file to append to")
	return cmd
}

// registryRESTConfig is the cluster of the gateway, if any: unlike the
// other commands, the gateway runs without one when --tenants is given.
func registryRESTConfig(kubeconfig string, inCluster bool) (*rest.Config, error) {
	switch {
	case inCluster:
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--in-cluster: %w", err)
		}
		return c, nil
	case kubeconfig != "":
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
		return c, nil
	}
	return nil, nil
}

func auditLogger(cmd *cobra.Command, dest string) (*slog.Logger, func(), error) {
	var w io.Writer = cmd.OutOrStdout()
	closeFn := func() {}
	if dest != "-" && dest != "" {
		f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("--audit-log: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})), closeFn, nil
}
