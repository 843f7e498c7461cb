//go:build release || windows

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newDevCommand stands in for dev in the release binary (the image's),
// which leaves out the local control plane and the replay.
func newDevCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "dev",
		Short:              "Not in this build: the local control plane is in the development binary (make build)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return withExitCode(2, errors.New("tenantguard dev is not in this build: the image's binary (-tags release) leaves it out, and the local control plane needs Linux or macOS (on Windows, use WSL2); build the development binary there with make build"))
		},
	}
}
