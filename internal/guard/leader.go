package guard

import (
	"context"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/tenantguard/tenantguard/internal/kinds"
)

// LeaseName is the name of the Lease that elects the replica running the
// controllers.
const LeaseName = "tenantguard.dev"

// controllers runs the guard's controllers on one replica at a time, and
// nothing else: leadership is for controllers. Each term gets a manager of
// its own that campaigns for the lease and shares the serving manager's
// cache, so no informer is started twice. When a term ends because the
// lease was lost (an API server outage longer than the renew deadline),
// the controllers stop and the replica campaigns again; the webhook, which
// runs on the serving manager, never notices. On a clean stop the lease is
// released, so a rolling update does not wait out the lease.
type controllers struct {
	config    *rest.Config
	cache     cache.Cache
	elect     bool
	namespace string
	// setup adds the controllers to a term's manager.
	setup func(manager.Manager) error
}

// NeedLeaderElection is false: the serving manager starts this at once;
// the terms campaign themselves.
func (c *controllers) NeedLeaderElection() bool { return false }

// Start runs terms until ctx ends.
func (c *controllers) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("tenantguard").WithName("controllers")
	for {
		err := c.term(ctx)
		if ctx.Err() != nil {
			return nil
		}
		log.Info("controllers stopped; campaigning for the lease again (the webhook keeps serving)", "reason", errText(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (c *controllers) term(ctx context.Context) error {
	skip := true
	mgr, err := ctrl.NewManager(c.config, manager.Options{
		Scheme:                        kinds.Scheme,
		LeaderElection:                c.elect,
		LeaderElectionID:              LeaseName,
		LeaderElectionNamespace:       c.namespace,
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		NewCache: func(*rest.Config, cache.Options) (cache.Cache, error) {
			return sharedCache{c.cache}, nil
		},
		Logger: ctrl.Log.WithName("tenantguard"),
		// A new term registers the same controller names again.
		Controller: ctrlconfig.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		return err
	}
	if err := c.setup(mgr); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// sharedCache is the serving manager's cache, handed to a term's manager:
// the serving manager starts and stops it, so a term only waits on it.
type sharedCache struct{ cache.Cache }

func (s sharedCache) Start(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func errText(err error) string {
	if err == nil {
		return "stopped"
	}
	return err.Error()
}
