package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tenantguard/tenantguard/internal/devenv"
)

func newDevCommand() *cobra.Command {
	var (
		dir      string
		cacheDir string
		logs     bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local control plane with the guard installed, and replay the five problems",
		Long: `dev starts a real local control plane (etcd and kube-apiserver on 127.0.0.1),
writes an admin kubeconfig under --dir, prints kubectl commands to try, and
runs until interrupted (Ctrl-C), then stops every process it started.

The control-plane binaries are built once from the Go module proxy and cached
(see 'tenantguard dev binaries').`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			stderr := cmd.ErrOrStderr()
			bins, err := devenv.EnsureBinaries(ctx, devenv.BuildOptions{CacheDir: cacheDir, Progress: stderr})
			if err != nil {
				return err
			}
			opts := devenv.Options{Binaries: bins}
			if logs {
				opts.Logs = stderr
			}
			fmt.Fprintln(stderr, "starting etcd and kube-apiserver on 127.0.0.1 ...")
			env, err := devenv.Start(ctx, opts)
			if err != nil {
				return err
			}
			defer func() {
				fmt.Fprintln(stderr, "stopping the control plane ...")
				if err := env.Stop(); err != nil {
					fmt.Fprintln(stderr, "stop control plane:", err)
				}
			}()
			kubeconfig, err := filepath.Abs(filepath.Join(dir, "kubeconfig"))
			if err != nil {
				return err
			}
			if err := devenv.WriteKubeconfig(kubeconfig, env.Config, "tenantguard-dev"); err != nil {
				return err
			}
			defer os.Remove(kubeconfig)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "\ncontrol plane ready at %s\nkubeconfig: %s\n\ntry, from another shell:\n", env.Config.Host, kubeconfig)
			fmt.Fprintf(out, "  %s --kubeconfig %s get namespaces\n", bins.Kubectl, kubeconfig)
			fmt.Fprintf(out, "\nCtrl-C stops everything.\n")
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", filepath.Join(".tenantguard", "dev"), "directory for the kubeconfig and other files of the dev environment")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "control-plane binary cache (default $"+devenv.CacheDirEnv+" or <user cache dir>/tenantguard)")
	cmd.Flags().BoolVar(&logs, "control-plane-logs", false, "print the output of etcd and kube-apiserver")
	cmd.AddCommand(newDevBinariesCommand(&cacheDir))
	return cmd
}

func newDevBinariesCommand(cacheDir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "binaries",
		Short: "Build (once) or verify the cached control-plane binaries and print their paths",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bins, err := devenv.EnsureBinaries(cmd.Context(), devenv.BuildOptions{CacheDir: *cacheDir, Progress: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "kube-apiserver: %s\netcd: %s\nkubectl: %s\n", bins.APIServer, bins.Etcd, bins.Kubectl)
			return nil
		},
	}
}
