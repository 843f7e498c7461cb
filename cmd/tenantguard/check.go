package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tenantguard/tenantguard/internal/check"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/manifest"
	"github.com/tenantguard/tenantguard/internal/policy"
)

func newCheckCommand() *cobra.Command {
	var (
		tenants, cluster []string
		configFile       string
		output           string
		user             string
		groups           []string
		namespace        string
	)
	cmd := &cobra.Command{
		Use:   "check [flags] <file|dir|->...",
		Short: "Check manifests offline against the tenants' rules (for CI)",
		Long: `check applies the admission rules to manifests without a cluster: the same
policy functions the webhook calls. Objects are judged in order, as if
applied, so that a bundle that conflicts with itself (two Ingresses with one
host) is caught; --cluster adds what the cluster already holds (exported
Namespaces, Ingresses, routes, HostClaims) so that conflicts with it are
caught too.

Input: YAML (multi-document) or JSON files, directories (their .yaml, .yml and
.json files), "-" for stdin, and List objects. Kinds without rules are passed
over.

Exit code: 0 no findings, 1 findings, 2 unreadable input (the reason is
printed).`,
		Example: `  tenantguard check --tenants examples/tenants examples/manifests
  helm template ./chart | tenantguard check --tenants tenants.yaml -n project1 -o json -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return withExitCode(2, fmt.Errorf("-o %q: want text or json", output))
			}
			cfg, err := config.Load(configFile)
			if err != nil {
				return withExitCode(2, err)
			}
			stdin := cmd.InOrStdin()
			tenantObjs, err := manifest.ReadPaths(tenants, stdin)
			if err != nil {
				return withExitCode(2, err)
			}
			clusterObjs, err := manifest.ReadPaths(cluster, stdin)
			if err != nil {
				return withExitCode(2, err)
			}
			bundle, err := manifest.ReadPaths(args, stdin)
			if err != nil {
				return withExitCode(2, err)
			}
			res, err := check.Run(check.Options{
				Engine:           policy.NewEngine(cfg),
				User:             policy.User{Name: user, Groups: groups},
				DefaultNamespace: namespace,
			}, tenantObjs, clusterObjs, bundle)
			if err != nil {
				return withExitCode(2, err)
			}
			if err := printFindings(cmd.OutOrStdout(), output, res); err != nil {
				return err
			}
			if len(res.Findings) > 0 {
				return withExitCode(1, fmt.Errorf("%d finding(s) in %d object(s) checked", len(res.Findings), res.Checked))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&tenants, "tenants", nil, "Tenant objects: file or directory (repeatable)")
	f.StringSliceVar(&cluster, "cluster", nil, "objects the cluster already has: file or directory (repeatable)")
	f.StringVar(&configFile, "config", "", "guard configuration file (GuardConfig YAML)")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	f.StringVar(&user, "user", "tenantguard-check", "user that applies the bundle (decides exemptions and namespace label rights)")
	f.StringSliceVar(&groups, "group", nil, "groups of that user (repeatable)")
	f.StringVarP(&namespace, "namespace", "n", "default", "namespace of namespaced objects that name none")
	return cmd
}

func printFindings(w io.Writer, output string, res check.Result) error {
	if output == "json" {
		if res.Findings == nil {
			res.Findings = []check.Finding{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	for _, f := range res.Findings {
		fmt.Fprintln(w, f)
	}
	fmt.Fprintf(w, "%d object(s) checked, %d passed over (no rules for their kind), %d finding(s)\n", res.Checked, res.Skipped, len(res.Findings))
	return nil
}
