package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/install"
	"github.com/tenantguard/tenantguard/internal/version"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

func newInstallCommand() *cobra.Command {
	opts := install.Options{}
	var configFile, certDir string
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Print the manifests that install the guard in a cluster",
		Long: `install prints everything a cluster needs to run the guard, for
'kubectl apply -f -': the Tenant and HostClaim CRDs, the guard's namespace,
service account and RBAC, its configuration, a Deployment (2 replicas by
default) with its Service and PodDisruptionBudget, a newly generated CA and
serving certificate, and the ValidatingWebhookConfiguration that trusts it.

Run 'tenantguard audit' first: objects created before the guard keep working,
and the audit lists the ones that break the rules. Re-running install renews
the certificate (unless --cert-dir keeps it); the guard reloads it without
a restart.`,
		Example: `  tenantguard install --image registry.example.com/tenantguard:` + version.Version + ` | kubectl apply -f -
  tenantguard install --image ... --config guard.yaml > tenantguard.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configFile)
			if err != nil {
				return withExitCode(2, err)
			}
			opts.Config = cfg
			if configFile != "" {
				if opts.ConfigYAML, err = os.ReadFile(configFile); err != nil {
					return withExitCode(2, err)
				}
			}
			if certDir != "" {
				certs, err := webhook.ReadCertificates(certDir)
				if errors.Is(err, fs.ErrNotExist) {
					if certs, err = install.Certificates(opts); err == nil {
						err = certs.WriteFiles(certDir)
					}
				}
				if err != nil {
					return withExitCode(2, fmt.Errorf("--cert-dir: %w", err))
				}
				opts.Certificates = &certs
			}
			objs, err := install.Render(opts)
			if err != nil {
				return withExitCode(2, err)
			}
			return install.WriteYAML(cmd.OutOrStdout(), objs)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Image, "image", "", "tenantguard image (required; see docs/install.md to build one)")
	f.Int32Var(&opts.Replicas, "replicas", 2, "webhook replicas")
	f.DurationVar(&opts.CertValidity, "cert-validity", 365*24*time.Hour, "validity of the generated webhook serving certificate")
	f.StringVar(&configFile, "config", "", "guard configuration file (GuardConfig YAML), mounted into the pods")
	f.StringVar(&certDir, "cert-dir", "", "keep the webhook certificate here: reuse tls.crt, tls.key and ca.crt if present, else write new ones (without it, every run makes a new certificate)")
	return cmd
}
