package loadtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/kinds"
)

// Labels on everything the tool creates.
const (
	labelSide     = "loadtest.tenantguard.dev/side" // guard, none, fill or base
	labelWorkload = "loadtest.tenantguard.dev/workload"
	annotationRev = "loadtest.tenantguard.dev/rev"
	tenantRole    = "loadtest-tenant"
	ingressClass  = "nginx"
)

// runner holds the clients and counters of one run.
type runner struct {
	opts    Options
	env     *devenv.Env
	guards  *devenv.ProcGuards
	admin   client.Client
	tenants []tenant
	side    string // "" until the first setSide
	// seq numbers every object the run creates, so that names and hosts
	// are unique.
	seq atomic.Int64
	// ingresses counts the Ingresses in the cluster.
	ingresses atomic.Int64
}

// tenant is one tenant: a namespace of its own and a client that acts as
// one of its developers.
type tenant struct {
	name, namespace, domain, repo string
	client                        client.Client
}

func newRunner(env *devenv.Env, guards *devenv.ProcGuards, opts Options) (*runner, error) {
	adminCfg := unlimited(env.Config)
	httpClient, err := rest.HTTPClientFor(adminCfg)
	if err != nil {
		return nil, err
	}
	// One discovery mapper for every client: a thousand tenants must not
	// mean a thousand discoveries.
	mapper, err := apiutil.NewDynamicRESTMapper(adminCfg, httpClient)
	if err != nil {
		return nil, err
	}
	admin, err := client.New(adminCfg, client.Options{Scheme: kinds.Scheme, Mapper: mapper, HTTPClient: httpClient})
	if err != nil {
		return nil, err
	}
	r := &runner{opts: opts, env: env, guards: guards, admin: admin}
	for i := range opts.Tenants {
		name := fmt.Sprintf("lt%05d", i)
		t := tenant{name: name, namespace: name, domain: name + ".load.test", repo: "registry.load.test/" + name}
		// The client acts as the tenant's developer (impersonation): the
		// API server authorizes and admits its requests as that user's.
		cfg := unlimited(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: name + "-dev", Groups: []string{name + "-devs", "system:authenticated"}}
		hc, err := rest.HTTPClientFor(cfg)
		if err != nil {
			return nil, err
		}
		if t.client, err = client.New(cfg, client.Options{Scheme: kinds.Scheme, Mapper: mapper, HTTPClient: hc}); err != nil {
			return nil, err
		}
		r.tenants = append(r.tenants, t)
	}
	return r, nil
}

// unlimited is cfg without client-side rate limiting: the tool measures
// the server, not client-go's default 5 requests per second.
func unlimited(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0
	c.Timeout = 30 * time.Second
	return c
}

// setSide registers or unregisters the guard's webhook configuration and
// waits until the API server applies the change.
func (r *runner) setSide(ctx context.Context, side string) error {
	if r.side == side {
		return nil
	}
	var err error
	if side == Guard {
		err = r.guards.Register(ctx)
	} else {
		err = r.guards.Unregister(ctx)
	}
	if err != nil {
		return fmt.Errorf("switch to %s: %w", side, err)
	}
	r.side = side
	return nil
}

// setup creates the tenants, their namespaces and rights, and one base
// Ingress per tenant whose host the workloads reuse.
func (r *runner) setup(ctx context.Context) error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: tenantRole},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services", "pods"}, Verbs: []string{"get", "list", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: []string{"get", "list", "create", "update", "patch", "delete"}},
		},
	}
	if err := r.admin.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create role %s: %w", tenantRole, err)
	}
	err := r.parallel(ctx, len(r.tenants), func(ctx context.Context, i int) error {
		t := r.tenants[i]
		objs := []client.Object{
			&v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: t.name}, Spec: v1alpha1.TenantSpec{
				Namespaces: []string{t.namespace},
				Ingress:    v1alpha1.IngressPolicy{AllowedHosts: []string{"*." + t.domain}, AllowedClasses: []string{ingressClass}},
				Images:     v1alpha1.ImagePolicy{AllowedRepositories: []string{t.repo + "/*"}},
			}},
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.namespace, Labels: map[string]string{v1alpha1.TenantLabel: t.name}}},
			&rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: tenantRole, Namespace: t.namespace},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: tenantRole},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: t.name + "-devs"}},
			},
			// Container defaults, as a platform team gives a tenant. Without
			// a LimitRange, the API server's LimitRanger looks the namespace's
			// up live at its first Pod in 30 s: a consistent LIST of an idle
			// kind, which waits up to 100 ms for the watch cache's progress
			// notification and made whole batches 100 ms on either side.
			&corev1.LimitRange{
				ObjectMeta: metav1.ObjectMeta{Name: "defaults", Namespace: t.namespace},
				Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
					Type:           corev1.LimitTypeContainer,
					Default:        corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
					DefaultRequest: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
				}}},
			},
		}
		for _, o := range objs {
			if err := r.admin.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The base Ingress is admitted once RBAC and the guards' informers
	// have caught up with the tenant; until then it is retried.
	return r.parallel(ctx, len(r.tenants), func(ctx context.Context, i int) error {
		t := r.tenants[i]
		ing := ingress(t.namespace, "base", "base."+t.domain, "/", "base", "")
		deadline := time.Now().Add(time.Minute)
		for {
			err := t.client.Create(ctx, ing.DeepCopy())
			if err == nil || apierrors.IsAlreadyExists(err) {
				r.ingresses.Add(1)
				return nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("tenant %s: base Ingress not admitted within a minute: %w", t.name, err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// fill creates Ingresses with new hosts, through the guard, as the
// tenants, until the cluster holds level Ingresses. They are not measured.
func (r *runner) fill(ctx context.Context, level int) (Fill, error) {
	need := level - int(r.ingresses.Load())
	if need <= 0 {
		return Fill{Level: level}, nil
	}
	if err := r.setSide(ctx, Guard); err != nil {
		return Fill{Level: level}, err
	}
	start := time.Now()
	var done atomic.Int64
	step := max(need/10, 1)
	err := r.parallel(ctx, need, func(ctx context.Context, i int) error {
		seq := r.seq.Add(1)
		t := r.tenants[int(seq)%len(r.tenants)]
		ing := ingress(t.namespace, fmt.Sprintf("fill-%07d", seq), fmt.Sprintf("f%07d.%s", seq, t.domain), "/", "fill", "")
		if err := t.client.Create(ctx, ing); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
		r.ingresses.Add(1)
		if n := done.Add(1); n%int64(step) == 0 {
			fmt.Fprintf(r.opts.Progress, "fill to %d: %d/%d Ingresses (%s)\n", level, n, need, time.Since(start).Round(time.Second))
		}
		return nil
	})
	return Fill{Level: level, Ingresses: int(done.Load()), Seconds: round(time.Since(start).Seconds(), 1)}, err
}

// parallel runs f(0..n-1) on the workers and returns the first error.
func (r *runner) parallel(ctx context.Context, n int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.opts.Workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// batch runs ops operations of workload w on the current side and
// measures them.
func (r *runner) batch(ctx context.Context, level int, w, side string, index, pos, ops int) (*Batch, error) {
	before, err := r.sample(ctx)
	if err != nil {
		return nil, err
	}
	bt := &Batch{Level: level, Workload: w, Side: side, Index: index, Position: pos, Ingresses: int(r.ingresses.Load())}
	lat := make([]time.Duration, ops)
	var errs atomic.Int64
	var firstErr error
	var mu sync.Mutex
	start := time.Now()
	_ = r.parallel(ctx, ops, func(ctx context.Context, i int) error {
		op := r.op(w, side)
		t0 := time.Now()
		err := op(ctx)
		lat[i] = time.Since(t0)
		if err != nil && ctx.Err() == nil {
			errs.Add(1)
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
		return nil
	})
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("level %d, %s, batch %d, %s: %w", level, w, index+1, side, err)
	}
	after, err := r.sample(ctx)
	if err != nil {
		return nil, err
	}
	bt.fill(lat, elapsed, int(errs.Load()), before, after)
	if firstErr != nil {
		bt.FirstError = firstErr.Error()
		fmt.Fprintf(r.opts.Progress, "  first error: %v\n", firstErr)
	}
	return bt, nil
}

// op returns the next operation of workload w.
func (r *runner) op(w, side string) func(context.Context) error {
	seq := r.seq.Add(1)
	t := r.tenants[int(seq)%len(r.tenants)]
	switch w {
	case IngressNewHost:
		ing := ingress(t.namespace, fmt.Sprintf("new-%07d", seq), fmt.Sprintf("n%07d.%s", seq, t.domain), "/", side, w)
		return r.createIngress(t, ing)
	case IngressOwnedHost:
		// Alternate per round over the tenants, so that every tenant sees
		// both kinds of operation.
		if (seq/int64(len(r.tenants)))%2 == 0 {
			// An update that keeps the hosts.
			patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"%d"}}}`, annotationRev, seq)
			return func(ctx context.Context) error {
				base := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: t.namespace, Name: "base"}}
				return t.client.Patch(ctx, base, client.RawPatch(types.MergePatchType, patch))
			}
		}
		// A new path on the host the namespace owns.
		ing := ingress(t.namespace, fmt.Sprintf("path-%07d", seq), "base."+t.domain, fmt.Sprintf("/p%07d", seq), side, w)
		return r.createIngress(t, ing)
	default:
		labels := map[string]string{labelSide: side, labelWorkload: w}
		meta := metav1.ObjectMeta{Namespace: t.namespace, Name: fmt.Sprintf("obj-%07d", seq), Labels: labels}
		pod := corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: t.repo + "/app:v1"}}}
		var obj client.Object
		switch (seq / int64(len(r.tenants))) % 3 {
		case 0:
			// Headless: a cluster IP would be allocated from a range
			// that a large run exhausts.
			obj = &corev1.Service{ObjectMeta: meta, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Port: 80}}}}
		case 1:
			sel := map[string]string{"app": meta.Name}
			obj = &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: pod},
			}}
		default:
			obj = &corev1.Pod{ObjectMeta: meta, Spec: pod}
		}
		return func(ctx context.Context) error { return t.client.Create(ctx, obj) }
	}
}

func (r *runner) createIngress(t tenant, ing *networkingv1.Ingress) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := t.client.Create(ctx, ing); err != nil {
			return err
		}
		r.ingresses.Add(1)
		return nil
	}
}

func ingress(ns, name, host, path, side, workload string) *networkingv1.Ingress {
	labels := map[string]string{labelSide: side}
	if workload != "" {
		labels[labelWorkload] = workload
	}
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To(ingressClass),
			Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: path, PathType: &prefix, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "app", Port: networkingv1.ServiceBackendPort{Number: 80}},
				}}},
			}}}},
		},
	}
}

// sample is the guard's state at one moment: its processes' CPU and
// memory, and its metrics.
type sample struct {
	cpu        time.Duration
	rss        int64 // all replicas
	rssMax     int64 // the largest replica
	admissions float64
	requests   map[string]float64 // by HTTP method
	webhook    map[string]float64 // the webhook's own, by HTTP method
}

func (r *runner) sample(ctx context.Context) (sample, error) {
	s := sample{requests: map[string]float64{}, webhook: map[string]float64{}}
	for i := range r.guards.Replicas() {
		pid := r.guards.Pid(i)
		if pid == 0 {
			return s, fmt.Errorf("guard replica %d is not running", i)
		}
		p, err := readProc(pid)
		if err != nil {
			return s, fmt.Errorf("guard replica %d: %w", i, err)
		}
		s.cpu += p.CPU
		s.rss += p.RSS
		s.rssMax = max(s.rssMax, p.RSS)
		m, err := r.guards.Metrics(ctx, i)
		if err != nil {
			return s, err
		}
		s.admissions += m.Sum("tenantguard_admission_decisions_total", nil)
		for method, v := range m.ByLabel("rest_client_requests_total", "method") {
			s.requests[method] += v
		}
		for method, v := range m.ByLabel("tenantguard_webhook_api_requests_total", "method") {
			s.webhook[method] += v
		}
	}
	return s, nil
}
