package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newRegistryCommand is being built; see the registry issue.
func newRegistryCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "registry",
		Short:  "(not built yet)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("tenantguard registry is not built yet")
		},
	}
}
