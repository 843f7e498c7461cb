package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newDoctorCommand is being built; see the doctor issue.
func newDoctorCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "doctor",
		Short:  "(not built yet)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("tenantguard doctor is not built yet")
		},
	}
}
