// Package registrytest runs a real CNCF Distribution registry in process
// (see localregistry) for the tests and benchmarks, stopped when the test
// ends.
package registrytest

import (
	"testing"

	"github.com/tenantguard/tenantguard/internal/registry/localregistry"
)

// Options configure the upstream registry; see localregistry.Options.
type Options = localregistry.Options

// TokenAuth is Distribution's token auth configuration.
type TokenAuth = localregistry.TokenAuth

// Registry is a running upstream registry.
type Registry = localregistry.Registry

// Start runs a Distribution v3 registry (in memory unless RootDirectory is
// set) with deletes enabled on 127.0.0.1 until the test ends.
func Start(tb testing.TB, opts Options) *Registry {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	r, err := localregistry.Start(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.Close)
	return r
}
