package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tenantguard/tenantguard/internal/version"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "tenantguard",
		Short: "Make one private Kubernetes cluster safe to share between many projects",
		Long: `tenantguard guards a shared Kubernetes cluster: it refuses public load
balancers and node ports made by accident, Ingress and route hosts taken from
another application, and images from outside a tenant's repositories; it
scopes registry rights to a tenant's repositories with immutable production
tags; and it diagnoses why a machine cannot reach a private API server.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var logLevel string
	root.PersistentFlags().StringVar(&logLevel, "log-level", "", "log level: debug, info, warn or error (default: info for serve and registry, error otherwise)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return setUpLogging(cmd, logLevel)
	}
	root.AddCommand(
		newVersionCommand(),
		newDevCommand(),
		newServeCommand(),
		newCheckCommand(),
		newAuditCommand(),
		newInstallCommand(),
		newDoctorCommand(),
		newRegistryCommand(),
	)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the tenantguard version and the Kubernetes version it targets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "tenantguard %s (Kubernetes %s, etcd %s)\n",
				version.Version, version.Kubernetes, version.Etcd)
			return nil
		},
	}
}
