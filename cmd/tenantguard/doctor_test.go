package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorFlagErrorsExitTwo: every kind of bad input, including what
// cobra itself rejects, exits 2 with a reason, before any network traffic.
func TestDoctorFlagErrorsExitTwo(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad duration", []string{"doctor", "--kubeconfig", missing, "--timeout", "soon"}, `invalid argument "soon" for "--timeout"`},
		{"unknown flag", []string{"doctor", "--kubeconfig", missing, "--dns", "10.0.0.4"}, "unknown flag: --dns"},
		{"extra argument", []string{"doctor", "--kubeconfig", missing, "aks-prod"}, `doctor takes no arguments, got ["aks-prod"]`},
		{"zero timeout", []string{"doctor", "--kubeconfig", missing, "--timeout", "0s"}, "--timeout must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, "", tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, want 2 with %q\nstdout: %s\nstderr: %s", code, tt.want, out, errOut)
			}
			if out != "" {
				t.Errorf("bad input printed a report: %s", out)
			}
		})
	}
}
