package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tenantguard/tenantguard/internal/doctor"
)

func newDoctorCommand() *cobra.Command {
	var (
		opts   doctor.Options
		output string
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Diagnose why this machine cannot reach the (private) API server, and how to fix it",
		Long: `doctor checks the way from this machine to the API server of a kubeconfig
context, in the order kubectl takes it, and prints a verdict (OK, WARN, FAIL,
SKIP), the evidence and a Fix line for each step:

  kubeconfig  server URL, CA, kind of credentials (never their value), proxy-url
  name        the name's kind (AKS private/public FQDN), resolved through the
              system resolver and each --dns-server side by side
  proxy       which proxy kubectl uses for the URL (Go's own rules), the
              NO_PROXY entry that matched or the one to add
  tcp         connect directly or through the proxy (HTTP CONNECT)
  tls         handshake, chain against the kubeconfig CA, SAN, expiry
  api         /readyz, who the credentials are, and with --namespace whether
              they may list pods there

Every network step is bounded by --timeout; an exec credential plugin
(kubelogin) gets four times --timeout and is then stopped with every process
it started. Exit code: 0 when nothing failed (warnings allowed), 1 when a step
failed, 2 when the input is unusable (an unknown flag, a bad flag value, an
argument, a missing or garbled kubeconfig, an unknown context).

Fix lines are written for this machine's shell: export (bash, zsh) or
$env: and setx (PowerShell on Windows), with the file or command that makes
them permanent.

See docs/doctor.md for every failure and its fix.`,
		Example: `  tenantguard doctor
  tenantguard doctor --context aks-prod --dns-server 10.0.0.4 --namespace team-a
  tenantguard doctor --dns-server 168.63.129.16 -o json`,
		// Bad input exits 2, also when cobra finds it.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return withExitCode(2, fmt.Errorf("doctor takes no arguments, got %q: give the kubeconfig with --kubeconfig and the context with --context", args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return withExitCode(2, fmt.Errorf("-o %q: use text or json", output))
			}
			if opts.Timeout <= 0 {
				return withExitCode(2, fmt.Errorf("--timeout must be positive, not %s", opts.Timeout))
			}
			opts.Stderr = cmd.ErrOrStderr()
			rep, err := doctor.Run(cmd.Context(), opts)
			if err != nil {
				if errors.Is(err, doctor.ErrBadInput) {
					return withExitCode(2, err)
				}
				return withExitCode(1, err)
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				err = rep.WriteJSON(out)
			} else {
				err = rep.WriteText(out)
			}
			if err != nil {
				return withExitCode(1, err)
			}
			if failed := rep.Failed(); len(failed) > 0 {
				return withExitCode(1, fmt.Errorf("doctor: %s failed", strings.Join(failed, ", ")))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&opts.Context, "context", "", "kubeconfig context to check (default the current context)")
	f.StringSliceVar(&opts.DNSServers, "dns-server", nil, "also resolve the server name through this DNS server, IP or IP:port (repeatable), e.g. your on-prem DNS and a resolver inside the cluster's VNet")
	f.StringVarP(&opts.Namespace, "namespace", "n", "", "also check that the credentials may list pods in this namespace")
	f.DurationVar(&opts.Timeout, "timeout", doctor.DefaultTimeout, "bound on each network step")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return withExitCode(2, fmt.Errorf("%w (see tenantguard doctor --help)", err))
	})
	return cmd
}
