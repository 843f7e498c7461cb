// Package loadtest measures what the guard adds to the requests tenants
// make: it runs concurrent tenant clients against a real control plane,
// with the guard's webhooks registered and without them, in interleaved
// batches, and reports latency, throughput, the guard's CPU and memory, and
// the API requests the guard makes per admission. `go run ./hack/loadtest`
// is its command; docs/loadtest.md explains the method.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/tenantguard/tenantguard/internal/devenv"
)

// The workloads, each reported on its own.
const (
	// IngressNewHost creates Ingresses with a new unique host each: every
	// one needs a host claim.
	IngressNewHost = "ingress-new-host"
	// IngressOwnedHost updates Ingresses without changing their hosts, and
	// creates Ingresses with new paths on a host the namespace already owns.
	IngressOwnedHost = "ingress-owned-host"
	// NoHost creates Services, Deployments and Pods.
	NoHost = "no-host"
)

// Workloads are all workloads, in the order they run.
var Workloads = []string{IngressNewHost, IngressOwnedHost, NoHost}

// The two sides of every comparison.
const (
	Guard = "guard" // the guard's webhook configuration registered
	None  = "none"  // no webhook configuration
)

// Limits keep a run bounded whatever the flags say.
const (
	MaxTenants = 10_000
	MaxObjects = 1_000_000
	MaxWorkers = 256
	MaxLevel   = 1_000_000
)

// Options size a run.
type Options struct {
	// Tenants is the number of tenants, one namespace each (default 100).
	Tenants int
	// Objects is the number of operations of each workload on each side
	// at each level (default 1000).
	Objects int
	// Workers is the number of concurrent clients (default 16).
	Workers int
	// Batches splits each workload's operations on each side into
	// interleaved batches (default 5).
	Batches int
	// Levels are cluster sizes, in Ingresses, at which the workloads are
	// measured; the cluster is filled up to each level first (default [0]).
	Levels []int
	// Workloads to run (default all).
	Workloads []string
	// Deadline bounds the whole run (default 30m).
	Deadline time.Duration
	// Progress receives a line per batch and fill step; nil discards.
	Progress io.Writer
}

func (o *Options) setDefaults() {
	if o.Tenants == 0 {
		o.Tenants = 100
	}
	if o.Objects == 0 {
		o.Objects = 1000
	}
	if o.Workers == 0 {
		o.Workers = 16
	}
	if o.Batches == 0 {
		o.Batches = 5
	}
	if len(o.Levels) == 0 {
		o.Levels = []int{0}
	}
	if len(o.Workloads) == 0 {
		o.Workloads = Workloads
	}
	if o.Deadline == 0 {
		o.Deadline = 30 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Validate reports options that would make a run unbounded or meaningless.
func (o Options) Validate() error {
	o.setDefaults()
	var errs []error
	check := func(name string, v, lo, hi int) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("%s %d: want %d to %d", name, v, lo, hi))
		}
	}
	check("tenants", o.Tenants, 1, MaxTenants)
	check("objects", o.Objects, 1, MaxObjects)
	check("workers", o.Workers, 1, MaxWorkers)
	check("batches", o.Batches, 1, o.Objects)
	for i, l := range o.Levels {
		check("level", l, 0, MaxLevel)
		if i > 0 && l <= o.Levels[i-1] {
			errs = append(errs, fmt.Errorf("levels %v: want increasing cluster sizes", o.Levels))
			break
		}
	}
	for _, w := range o.Workloads {
		if !slices.Contains(Workloads, w) {
			errs = append(errs, fmt.Errorf("workload %q: want one of %s", w, strings.Join(Workloads, ", ")))
		}
	}
	if o.Deadline < 0 {
		errs = append(errs, fmt.Errorf("deadline %s is negative", o.Deadline))
	}
	return errors.Join(errs...)
}

// Run measures the workloads at each level against env, with guards as
// the webhook. It registers and unregisters guards' webhook configuration
// between batches and leaves it registered. On an error (the deadline
// included) it returns what it measured so far with the error.
func Run(ctx context.Context, env *devenv.Env, guards *devenv.ProcGuards, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	ctx, cancel := context.WithTimeout(ctx, opts.Deadline)
	defer cancel()
	r, err := newRunner(env, guards, opts)
	if err != nil {
		return nil, err
	}
	rep := newReport(opts)
	err = r.run(ctx, rep)
	rep.finish()
	if err != nil {
		return rep, err
	}
	if err := r.setSide(ctx, Guard); err != nil {
		return rep, err
	}
	v, err := VerifyClaims(ctx, r.admin)
	rep.Verified = v
	return rep, err
}

func (r *runner) run(ctx context.Context, rep *Report) error {
	start := time.Now()
	if err := r.setSide(ctx, Guard); err != nil {
		return err
	}
	if err := r.setup(ctx); err != nil {
		return err
	}
	fmt.Fprintf(r.opts.Progress, "setup: %d tenants in %s\n", r.opts.Tenants, time.Since(start).Round(time.Millisecond))
	for _, level := range r.opts.Levels {
		f, err := r.fill(ctx, level)
		rep.Fills = append(rep.Fills, f)
		if err != nil {
			return err
		}
		for _, w := range r.opts.Workloads {
			for b := range r.opts.Batches {
				ops := r.opts.Objects / r.opts.Batches
				if b < r.opts.Objects%r.opts.Batches {
					ops++
				}
				// The side that goes first alternates, so that drift in
				// the machine (caches warming, the cluster growing)
				// hits both alike.
				order := []string{Guard, None}
				if b%2 == 1 {
					order = []string{None, Guard}
				}
				for pos, side := range order {
					if err := r.setSide(ctx, side); err != nil {
						return err
					}
					bt, err := r.batch(ctx, level, w, side, b, pos, ops)
					if bt != nil {
						rep.Batches = append(rep.Batches, *bt)
					}
					if err != nil {
						return err
					}
					fmt.Fprintf(r.opts.Progress, "level %d %-18s batch %d/%d %-5s %5d ops %4d errors  p50 %6.2fms  p99 %6.2fms  %7.1f ops/s  (%d ingresses, %s elapsed)\n",
						level, w, b+1, r.opts.Batches, side, bt.Ops, bt.Errors, bt.P50Ms, bt.P99Ms, bt.Throughput, r.ingresses.Load(), time.Since(start).Round(time.Second))
				}
			}
		}
	}
	return nil
}
