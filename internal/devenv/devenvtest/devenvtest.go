// Package devenvtest starts the real local control plane for tests.
package devenvtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tenantguard/tenantguard/internal/devenv"
)

// Start builds or reuses the cached control-plane binaries, starts etcd and
// kube-apiserver, and stops them when the test ends. Build progress goes to
// stderr: the first build takes minutes.
func Start(tb testing.TB, opts devenv.Options) *devenv.Env {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bins, err := devenv.EnsureBinaries(ctx, devenv.BuildOptions{Progress: os.Stderr})
	if err != nil {
		tb.Fatalf("control-plane binaries: %v", err)
	}
	opts.Binaries = bins
	env, err := devenv.Start(ctx, opts)
	if err != nil {
		tb.Fatalf("start control plane: %v", err)
	}
	tb.Cleanup(func() {
		if err := env.Stop(); err != nil {
			tb.Errorf("stop control plane: %v", err)
		}
	})
	return env
}
