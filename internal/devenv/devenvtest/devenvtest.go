// Package devenvtest starts the real local control plane for tests.
package devenvtest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tenantguard/tenantguard/config/crd"
	"github.com/tenantguard/tenantguard/internal/devenv"
)

// Start builds or reuses the cached control-plane binaries, starts etcd and
// kube-apiserver, and stops them when the test ends. Build progress goes to
// stderr: the first build takes minutes.
func Start(tb testing.TB, opts devenv.Options) *devenv.Env {
	tb.Helper()
	env, stop, err := StartShared(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Errorf("stop control plane: %v", err)
		}
	})
	return env
}

// StartWithCRDs is Start with tenantguard's CRDs installed.
func StartWithCRDs(tb testing.TB) *devenv.Env {
	tb.Helper()
	crds, err := crd.CRDs()
	if err != nil {
		tb.Fatal(err)
	}
	return Start(tb, devenv.Options{CRDs: crds})
}

// StartShared is Start for a TestMain that shares one control plane
// between the tests of a package; the caller runs stop at the end.
func StartShared(opts devenv.Options) (env *devenv.Env, stop func() error, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bins, err := devenv.EnsureBinaries(ctx, devenv.BuildOptions{Progress: os.Stderr})
	if err != nil {
		return nil, nil, fmt.Errorf("control-plane binaries: %w", err)
	}
	opts.Binaries = bins
	env, err = devenv.Start(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	return env, env.Stop, nil
}
