//go:build !release && !windows

// The dev command and everything it pulls in (the local control plane, the
// in-process registry, the replay) stay out of the image's binary, which
// is built with -tags release (see dev_release.go).

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/replay"
)

func newDevCommand() *cobra.Command {
	var (
		dir            string
		cacheDir       string
		logs           bool
		configFile     string
		replayProblems bool
		imageLayout    string
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local control plane with the guard installed, and replay the five problems",
		Long: `dev starts a real local control plane (etcd and kube-apiserver on 127.0.0.1),
writes an admin kubeconfig under --dir, prints kubectl commands to try, and
runs until interrupted (Ctrl-C), then stops every process it started.

With --image (make dev sets it), the tenantguard image is pushed to the
in-process registry at start and its reference printed.

The control-plane binaries are built once from the Go module proxy and cached
(see 'tenantguard dev binaries').`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			stderr := cmd.ErrOrStderr()
			if imageLayout != "" && !replayProblems {
				return withExitCode(2, errors.New("--image needs --replay: the image is pushed to the replay's registry"))
			}
			bins, err := devenv.EnsureBinaries(ctx, devenv.BuildOptions{CacheDir: cacheDir, Progress: stderr})
			if err != nil {
				return err
			}
			crds, err := devenv.AllCRDs()
			if err != nil {
				return err
			}
			cfg, err := config.Load(configFile)
			if err != nil {
				return withExitCode(2, err)
			}
			opts := devenv.Options{Binaries: bins, CRDs: crds}
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
			absDir, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(stderr, "starting the guard (admission webhook and host claim controllers) ...")
			// The webhook configurations of this in-process guard have a name
			// of their own, so that `tenantguard install` applied to this
			// control plane makes its own beside them instead of colliding.
			g, err := env.StartGuard(ctx, devenv.GuardOptions{Config: cfg, Dir: absDir, WebhookName: "tenantguard-dev"})
			if err != nil {
				return err
			}
			defer func() {
				if err := g.Stop(); err != nil {
					fmt.Fprintln(stderr, "stop guard:", err)
				}
			}()
			kubeconfig := filepath.Join(absDir, "kubeconfig")
			if err := devenv.WriteKubeconfig(kubeconfig, env.Config, "tenantguard-dev"); err != nil {
				return err
			}
			defer os.Remove(kubeconfig)
			out := cmd.OutOrStdout()
			var ex *replay.Examples
			var reg *replay.Registry
			var image string
			if replayProblems {
				fmt.Fprintln(stderr, "creating the example tenants and replaying the five problems ...")
				if ex, err = replay.SetUpExamples(ctx, env, absDir); err != nil {
					return fmt.Errorf("set up examples: %w", err)
				}
				fmt.Fprintf(out, "\n== The five problems, replayed against this control plane ==\n")
				if _, err := replay.Doctor(ctx, env, absDir, out); err != nil {
					return fmt.Errorf("replay problems 1 and 2: %w", err)
				}
				if _, err := replay.Manifests(ctx, ex, out); err != nil {
					return fmt.Errorf("replay problems 3 to 5: %w", err)
				}
				if reg, err = replay.StartRegistry(ctx, env, ex, absDir); err != nil {
					return err
				}
				defer reg.Close(context.WithoutCancel(ctx))
				if imageLayout != "" {
					fmt.Fprintf(stderr, "pushing the image in %s to the dev registry ...\n", imageLayout)
					if image, err = replay.PushImage(ctx, imageLayout, reg.UpstreamHost()); err != nil {
						return err
					}
				}
				if _, err := replay.ReplayRegistry(ctx, reg, out); err != nil {
					return fmt.Errorf("replay the registry: %w", err)
				}
			}
			fmt.Fprintf(out, "\ncontrol plane ready at %s, guard webhook at https://%s\nkubeconfig: %s\n\ntry, from another shell:\n", env.Config.Host, g.Addr, kubeconfig)
			fmt.Fprintf(out, "  %s --kubeconfig %s get namespaces,tenants,hostclaims\n", bins.Kubectl, kubeconfig)
			if ex != nil {
				fmt.Fprintf(out, "\nas project1's developer (a tenant, not an admin):\n")
				fmt.Fprintf(out, "  %s --kubeconfig %s -n project1 create service loadbalancer demo --tcp=80:8080\n", bins.Kubectl, ex.Kubeconfigs["project1"])
				fmt.Fprintf(out, "\nthe registry gateway, as a CI robot (crane, docker or oras; plain HTTP on loopback):\n")
				fmt.Fprintf(out, "  crane auth login %s -u project2-ci -p %s && crane copy <image> %s/project1/app:v1  # refused\n", reg.Host, reg.Robots["project2-ci"], reg.Host)
				fmt.Fprintf(out, "\nas project2's developer, taking project1's host:\n")
				fmt.Fprintf(out, "  %s --kubeconfig %s -n project2 create ingress demo --class=nginx --rule=shop.example.com/=api:80\n", bins.Kubectl, ex.Kubeconfigs["project2"])
			}
			if image != "" {
				fmt.Fprintf(out, "\nthe tenantguard image (built by make image), in the dev registry:\n  %s\n", image)
				fmt.Fprintf(out, "  crane manifest --insecure %s\n", image)
			}
			fmt.Fprintf(out, "\nCtrl-C stops everything.\n")
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", filepath.Join(".tenantguard", "dev"), "directory for the kubeconfig and other files of the dev environment")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "control-plane binary cache (default $"+devenv.CacheDirEnv+" or <user cache dir>/tenantguard)")
	cmd.Flags().BoolVar(&replayProblems, "replay", true, "create the example tenants and replay the five problems")
	cmd.Flags().StringVar(&configFile, "config", "", "guard configuration file (GuardConfig YAML; default: built-in defaults)")
	cmd.Flags().StringVar(&imageLayout, "image", "", "OCI image layout of the tenantguard image (make image writes bin/image) to push to the dev registry; needs --replay")
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
