package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/install"
	"github.com/tenantguard/tenantguard/internal/version"
)

func newInstallCommand() *cobra.Command {
	opts := install.Options{}
	var (
		configFile  string
		certDir     string
		valuesFiles []string
		assignments []string
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Print the manifests that install the guard in a cluster",
		Long: `install renders the tenantguard Helm chart (charts/tenantguard, built into
this binary) for 'kubectl apply -f -': the Tenant and HostClaim CRDs, the
guard's namespace, service account and least-privilege RBAC, its
configuration, a Deployment (2 replicas by default) with its Service and
PodDisruptionBudget, the validating and mutating webhook configurations, a FlowSchema and
PriorityLevelConfiguration, and what the values turn on (cert-manager, a
NetworkPolicy, a ServiceMonitor, the registry gateway). It is exactly what
'helm install' of the same chart and values creates.

The output holds no private key. By default the guard makes its CA and
serving certificate in the cluster, keeps them in the Secret
tenantguard-webhook-tls and writes the caBundle into its own webhook
configuration; with --cert-manager, cert-manager issues them. Applying the
output again changes nothing.

Flags map to chart values (docs/install.md): --image to image.*,
--replicas to replicas, --config to config, --cert-manager to
certManager.enabled; --values and --set give any other value, as with helm.

Run 'tenantguard audit' first: objects created before the guard keep
working, and the audit lists the ones that break the rules.`,
		Example: `  tenantguard install --image myacr.azurecr.io/tenantguard:` + version.Version + ` | kubectl apply --server-side -f -
  tenantguard install --image ... --config guard.yaml --set networkPolicy.enabled=true > tenantguard.yaml
  tenantguard install --image ... --cert-manager --values my-values.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if certDir != "" {
				return withExitCode(2, errors.New("--cert-dir is gone: install no longer prints a certificate or key; the guard makes and keeps its own in the cluster, or use --cert-manager (docs/install.md)"))
			}
			if opts.CertValidity != 0 && !opts.CertManager {
				return withExitCode(2, errors.New("--cert-validity applies to the certificate cert-manager issues: add --cert-manager, or leave it out (the guard manages its own certificate)"))
			}
			cfg, err := config.Load(configFile)
			if err != nil {
				return withExitCode(2, err)
			}
			opts.Config = cfg
			if opts.Values, err = install.UserValues(valuesFiles, assignments); err != nil {
				return withExitCode(2, err)
			}
			objs, err := install.Render(opts)
			if err != nil {
				return withExitCode(2, err)
			}
			return install.WriteYAML(cmd.OutOrStdout(), objs)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Image, "image", "", "tenantguard image, registry/repository[:tag][@digest] (required; make image builds one, see docs/install.md)")
	f.Int32Var(&opts.Replicas, "replicas", 2, "webhook replicas")
	f.StringVar(&configFile, "config", "", "guard configuration file (GuardConfig YAML); its guardNamespace is where the guard is installed")
	f.BoolVar(&opts.CertManager, "cert-manager", false, "have cert-manager issue the webhook certificate and inject its CA (default: the guard manages them itself)")
	f.DurationVar(&opts.CertValidity, "cert-validity", 0, "with --cert-manager: lifetime of the certificate (default 8760h)")
	f.StringArrayVarP(&valuesFiles, "values", "f", nil, "chart values file (repeatable; later files win)")
	f.StringArrayVar(&assignments, "set", nil, "chart value, key=value (repeatable; wins over --values), e.g. --set networkPolicy.enabled=true")
	// Removed: kept only to say so.
	f.StringVar(&certDir, "cert-dir", "", "")
	_ = f.MarkHidden("cert-dir")
	return cmd
}
