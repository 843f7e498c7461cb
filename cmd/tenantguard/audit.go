package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/internal/audit"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/policy"
)

func newAuditCommand() *cobra.Command {
	var kubeconfig, configFile, output string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List the violations a live cluster already holds",
		Long: `audit reads a cluster and reports what the guard would have refused:
duplicate and overlapping hosts, hosts outside allowlists, catch-all Ingresses
and routes, public load balancers, node ports, external IPs and foreign
images. Objects are replayed oldest first, so the first user of a host owns it
and each later user is a finding; existing HostClaims count as owners.

Run it before installing the guard, and after: objects created before the
guard keep working, and the audit is how they are found. Objects made by a
controller (ReplicaSets of Deployments, Pods of ReplicaSets) are judged
through their owner.

Exit code: 0 no findings, 1 findings, 2 the cluster could not be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return withExitCode(2, fmt.Errorf("-o %q: want text or json", output))
			}
			cfg, err := config.Load(configFile)
			if err != nil {
				return withExitCode(2, err)
			}
			rc, err := restConfig(kubeconfig)
			if err != nil {
				return withExitCode(2, err)
			}
			c, err := client.New(rc, client.Options{Scheme: kinds.Scheme})
			if err != nil {
				return withExitCode(2, err)
			}
			res, err := audit.Run(cmd.Context(), c, policy.NewEngine(cfg))
			if err != nil {
				return withExitCode(2, err)
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				if res.Findings == nil {
					res.Findings = []policy.Finding{}
				}
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				for _, f := range res.Findings {
					fmt.Fprintln(w, f)
				}
				fmt.Fprintf(w, "%d object(s) audited, %d finding(s)\n", res.Objects, len(res.Findings))
				for _, k := range res.Skipped {
					fmt.Fprintf(w, "not served by this cluster, not audited: %s\n", k)
				}
			}
			if len(res.Findings) > 0 {
				return withExitCode(1, fmt.Errorf("%d finding(s)", len(res.Findings)))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&configFile, "config", "", "guard configuration file (GuardConfig YAML)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
