package devenv

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/install"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

// ProcGuardOptions configure guards run as separate `tenantguard serve`
// processes.
type ProcGuardOptions struct {
	// Binary is the tenantguard executable; empty means BuildBinary(Dir).
	Binary string
	// Replicas is the number of serve processes (default 2).
	Replicas int
	// Config is written to a file for --config; the zero value means
	// config.Default().
	Config config.Config
	// ExtraArgs are appended to every process's serve flags.
	ExtraArgs []string
	// Pprof serves net/http/pprof from each process on a loopback port of
	// its own (PprofAddr).
	Pprof bool
	// Env is added to every process's environment (KEY=VALUE), after the
	// harness's own.
	Env []string
	// Dir receives the configuration, kubeconfig, certificates and one log
	// file per replica. Required.
	Dir string
	// StartTimeout bounds the wait for one replica to become ready
	// (default 2m).
	StartTimeout time.Duration
	// SkipRegistration leaves the webhook configuration unregistered
	// (call Register).
	SkipRegistration bool
}

// ProcGuards are guard processes run as a cluster runs the Deployment
// that `install` renders: the built binary, one process per replica, each
// with its own ports, under the service account and RBAC that install
// creates, behind a round robin that stands for the Service.
type ProcGuards struct {
	env        *Env
	opts       ProcGuardOptions
	admin      client.Client
	rr         *RoundRobin
	replicas   []*replica
	kubeconfig string
	caBundle   []byte
	webhooks   []*unstructured.Unstructured

	mu         sync.Mutex
	registered bool
}

type replica struct {
	args                                            []string
	webhookAddr, healthAddr, metricsAddr, pprofAddr string
	logPath                                         string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
}

// fieldOwner is the server-side apply field manager of what the harness
// applies.
const fieldOwner = "tenantguard-procguard"

// StartProcGuards applies install's namespace, service account and RBAC,
// mints a token for the service account, starts the replicas, waits until
// each is ready (/readyz), and registers install's webhook configuration
// with the round robin's URL (unless SkipRegistration). Stop ends them.
func (e *Env) StartProcGuards(ctx context.Context, o ProcGuardOptions) (_ *ProcGuards, err error) {
	if o.Dir == "" {
		return nil, errors.New("proc guards: no Dir for configuration, certificates and logs")
	}
	if o.Replicas == 0 {
		o.Replicas = 2
	}
	if o.Replicas < 0 {
		return nil, fmt.Errorf("proc guards: %d replicas", o.Replicas)
	}
	if o.Config.GuardNamespace == "" {
		o.Config = config.Default()
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("proc guards: %w", err)
	}
	if o.Binary == "" {
		if o.Binary, err = BuildBinary(ctx, filepath.Join(o.Dir, "bin")); err != nil {
			return nil, err
		}
	}
	admin, err := client.New(e.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		return nil, err
	}
	p := &ProcGuards{env: e, opts: o, admin: admin}

	if err := p.applyIdentity(ctx); err != nil {
		return nil, err
	}
	if err := p.writeFiles(ctx); err != nil {
		return nil, err
	}
	var backends []string
	for i := range o.Replicas {
		r, err := p.newReplica(i)
		if err != nil {
			return nil, err
		}
		p.replicas = append(p.replicas, r)
		backends = append(backends, r.webhookAddr)
	}
	if p.rr, err = StartRoundRobin(backends...); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = p.Stop()
		}
	}()
	for i := range p.replicas {
		if err := p.start(i); err != nil {
			return nil, err
		}
	}
	for i := range p.replicas {
		if err := p.waitReady(ctx, i); err != nil {
			return nil, err
		}
	}
	if !o.SkipRegistration {
		if err := p.Register(ctx); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// identityKinds are the objects of install's output that make the guard's
// identity and rights.
var identityKinds = map[string]bool{
	"Namespace": true, "ServiceAccount": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true,
}

// applyIdentity renders the installation, applies its identity objects
// and keeps its webhook configurations for Register. The objects are
// handled by kind only, whatever types install returns them as.
func (p *ProcGuards) applyIdentity(ctx context.Context) error {
	objs, err := install.Render(install.Options{
		Config: p.opts.Config, Image: "tenantguard:procguard", Replicas: int32(p.opts.Replicas),
		CertValidity: 24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("render installation: %w", err)
	}
	for _, obj := range objs {
		u, err := toUnstructured(obj)
		if err != nil {
			return err
		}
		switch kind := u.GetKind(); {
		case identityKinds[kind]:
			u.SetManagedFields(nil)
			u.SetResourceVersion("")
			if err := p.admin.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
				return fmt.Errorf("apply %s %s: %w", kind, u.GetName(), err)
			}
		case kind == "ValidatingWebhookConfiguration" || kind == "MutatingWebhookConfiguration":
			p.webhooks = append(p.webhooks, u)
		}
	}
	if len(p.webhooks) == 0 {
		return errors.New("the rendered installation has no ValidatingWebhookConfiguration")
	}
	return nil
}

func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u.DeepCopy(), nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %T: %w", obj, err)
	}
	u := &unstructured.Unstructured{Object: m}
	if u.GetKind() == "" {
		gvk, err := apiutil.GVKForObject(obj, kinds.Scheme)
		if err != nil {
			return nil, fmt.Errorf("kind of %T: %w", obj, err)
		}
		u.SetGroupVersionKind(gvk)
	}
	return u, nil
}

// writeFiles writes the configuration, a kubeconfig with a token of the
// guard's service account, and the serving certificate of 127.0.0.1.
func (p *ProcGuards) writeFiles(ctx context.Context) error {
	cfg := p.opts.Config
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("marshal configuration: %w", err)
	}
	if err := os.WriteFile(p.configPath(), data, 0o600); err != nil {
		return fmt.Errorf("write configuration: %w", err)
	}

	cs, err := kubernetes.NewForConfig(p.env.Config)
	if err != nil {
		return err
	}
	tr, err := cs.CoreV1().ServiceAccounts(cfg.GuardNamespace).CreateToken(ctx, cfg.GuardServiceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](24 * 60 * 60)},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for service account %s/%s: %w", cfg.GuardNamespace, cfg.GuardServiceAccount, err)
	}
	sa := &rest.Config{Host: p.env.Config.Host, BearerToken: tr.Status.Token}
	sa.CAData = p.env.Config.CAData
	sa.CAFile = p.env.Config.CAFile
	sa.ServerName = p.env.Config.ServerName
	p.kubeconfig = filepath.Join(p.opts.Dir, "kubeconfig")
	if err := WriteKubeconfig(p.kubeconfig, sa, "tenantguard"); err != nil {
		return err
	}

	certs, err := webhook.SelfSignedCertificates([]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, 365*24*time.Hour)
	if err != nil {
		return err
	}
	p.caBundle = certs.CACert
	for i := range p.opts.Replicas {
		if err := certs.WriteFiles(p.certDir(i)); err != nil {
			return err
		}
	}
	return nil
}

func (p *ProcGuards) configPath() string { return filepath.Join(p.opts.Dir, "config.yaml") }

func (p *ProcGuards) certDir(i int) string {
	return filepath.Join(p.opts.Dir, fmt.Sprintf("replica-%d-certs", i))
}

func (p *ProcGuards) newReplica(i int) (*replica, error) {
	var addrs [4]string
	for k := range addrs {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addrs[k] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	r := &replica{
		webhookAddr: addrs[0], healthAddr: addrs[1], metricsAddr: addrs[2], pprofAddr: addrs[3],
		logPath: filepath.Join(p.opts.Dir, fmt.Sprintf("replica-%d.log", i)),
	}
	r.args = append([]string{
		"serve",
		"--config=" + p.configPath(),
		"--kubeconfig=" + p.kubeconfig,
		"--cert-dir=" + p.certDir(i),
		"--webhook-bind-address=" + r.webhookAddr,
		"--health-bind-address=" + r.healthAddr,
		"--metrics-bind-address=" + r.metricsAddr,
		"--leader-election-namespace=" + p.opts.Config.GuardNamespace,
	}, p.opts.ExtraArgs...)
	if p.opts.Pprof {
		r.args = append(r.args, "--pprof-bind-address="+r.pprofAddr)
	} else {
		r.pprofAddr = ""
	}
	return r, nil
}

// start starts replica i's process; it does not wait for readiness.
func (p *ProcGuards) start(i int) error {
	r := p.replicas[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil && !isClosed(r.done) {
		return fmt.Errorf("replica %d is running (pid %d)", i, r.cmd.Process.Pid)
	}
	log, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("replica %d log: %w", i, err)
	}
	fmt.Fprintf(log, "=== %s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), p.opts.Binary, strings.Join(r.args, " "))
	cmd := exec.Command(p.opts.Binary, r.args...)
	if len(p.opts.Env) > 0 {
		cmd.Env = append(os.Environ(), p.opts.Env...)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start replica %d: %w", i, err)
	}
	done := make(chan struct{})
	r.cmd, r.done = cmd, done
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(log, "=== %s exited: %v\n", time.Now().UTC().Format(time.RFC3339Nano), exitText(err))
		log.Close()
		close(done)
	}()
	return nil
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// waitReady polls replica i's /readyz until it answers 200, the process
// exits, or StartTimeout passes.
func (p *ProcGuards) waitReady(ctx context.Context, i int) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer cancel()
	r := p.replicas[i]
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.HealthURL(i)+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err != nil {
			last = err.Error()
		} else {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		}
		select {
		case <-done:
			return fmt.Errorf("replica %d exited before it was ready\n%s", i, p.logTail(i))
		case <-ctx.Done():
			return fmt.Errorf("replica %d not ready (last answer: %s): %w\n%s", i, last, ctx.Err(), p.logTail(i))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail is the end of replica i's log, for error messages.
func (p *ProcGuards) logTail(i int) string {
	data, err := os.ReadFile(p.replicas[i].logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const max = 8 << 10
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return fmt.Sprintf("--- %s (end)\n%s", p.replicas[i].logPath, data)
}

// Kill sends SIGKILL to replica i and waits until it has exited.
func (p *ProcGuards) Kill(i int) error {
	if err := p.check(i); err != nil {
		return err
	}
	r := p.replicas[i]
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil || isClosed(done) {
		return fmt.Errorf("replica %d is not running", i)
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill replica %d: %w", i, err)
	}
	<-done
	return nil
}

// Start starts replica i again, with the same flags and ports, and waits
// until it is ready.
func (p *ProcGuards) Start(i int) error {
	if err := p.check(i); err != nil {
		return err
	}
	if err := p.start(i); err != nil {
		return err
	}
	return p.waitReady(context.Background(), i)
}

// Stop removes the webhook configuration (so that the control plane is
// usable without the guard), sends SIGTERM to every replica and waits for
// them (SIGKILL after 30s), and closes the round robin.
func (p *ProcGuards) Stop() error {
	var errs []error
	p.mu.Lock()
	registered := p.registered
	p.mu.Unlock()
	if registered {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		errs = append(errs, p.Unregister(ctx))
		cancel()
	}
	for i, r := range p.replicas {
		r.mu.Lock()
		cmd, done := r.cmd, r.done
		r.mu.Unlock()
		if cmd == nil || isClosed(done) {
			continue
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			errs = append(errs, fmt.Errorf("replica %d did not stop within 30s of SIGTERM; killed", i))
		}
	}
	if p.rr != nil {
		errs = append(errs, p.rr.Close())
	}
	return errors.Join(errs...)
}

func (p *ProcGuards) check(i int) error {
	if i < 0 || i >= len(p.replicas) {
		return fmt.Errorf("replica %d: there are %d (0 to %d)", i, len(p.replicas), len(p.replicas)-1)
	}
	return nil
}

// Register creates or replaces install's webhook configurations, each
// webhook pointed at the round robin (same path as install's Service
// reference) with the processes' CA, and waits until the API server calls
// the guard.
func (p *ProcGuards) Register(ctx context.Context) error {
	for _, wh := range p.webhooks {
		u, err := p.localWebhookConfiguration(wh)
		if err != nil {
			return err
		}
		existing := &unstructured.Unstructured{}
		existing.SetGroupVersionKind(u.GroupVersionKind())
		switch err := p.admin.Get(ctx, client.ObjectKey{Name: u.GetName()}, existing); {
		case apierrors.IsNotFound(err):
			err = p.admin.Create(ctx, u)
			if err != nil {
				return fmt.Errorf("create webhook configuration %s: %w", u.GetName(), err)
			}
		case err != nil:
			return fmt.Errorf("read webhook configuration %s: %w", u.GetName(), err)
		default:
			// A full replace, not an apply: it drops a Service reference
			// or fields another writer left.
			u.SetResourceVersion(existing.GetResourceVersion())
			if err := p.admin.Update(ctx, u); err != nil {
				return fmt.Errorf("replace webhook configuration %s: %w", u.GetName(), err)
			}
		}
	}
	p.mu.Lock()
	p.registered = true
	p.mu.Unlock()
	return waitForWebhook(ctx, p.admin, p.opts.Config)
}

// Unregister deletes the webhook configurations and waits until the API
// server no longer calls the guard.
func (p *ProcGuards) Unregister(ctx context.Context) error {
	for _, wh := range p.webhooks {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(wh.GroupVersionKind())
		u.SetName(wh.GetName())
		if err := p.admin.Delete(ctx, u); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete webhook configuration %s: %w", u.GetName(), err)
		}
	}
	p.mu.Lock()
	p.registered = false
	p.mu.Unlock()
	return waitForNoWebhook(ctx, p.admin, p.opts.Config)
}

// localWebhookConfiguration is wh with every webhook's clientConfig
// pointed at the round robin and trusting the processes' CA.
func (p *ProcGuards) localWebhookConfiguration(wh *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	u := wh.DeepCopy()
	u.SetResourceVersion("")
	u.SetManagedFields(nil)
	hooks, _, err := unstructured.NestedSlice(u.Object, "webhooks")
	if err != nil {
		return nil, fmt.Errorf("webhook configuration %s: %w", u.GetName(), err)
	}
	for k, h := range hooks {
		hook, ok := h.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("webhook configuration %s: webhooks[%d] is %T", u.GetName(), k, h)
		}
		path, _, _ := unstructured.NestedString(hook, "clientConfig", "service", "path")
		if path == "" {
			path = webhook.Path
		}
		if err := unstructured.SetNestedMap(hook, map[string]any{
			"url":      "https://" + p.rr.Addr() + path,
			"caBundle": base64.StdEncoding.EncodeToString(p.caBundle),
		}, "clientConfig"); err != nil {
			return nil, err
		}
		hooks[k] = hook
	}
	if err := unstructured.SetNestedSlice(u.Object, hooks, "webhooks"); err != nil {
		return nil, err
	}
	return u, nil
}

// waitForNoWebhook sends the dry-run Tenant that only the guard refuses
// until it is admitted: then the API server no longer calls the webhook.
func waitForNoWebhook(ctx context.Context, c client.Client, cfg config.Config) error {
	probe := &v1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "webhook-probe-"},
		Spec:       v1alpha1.TenantSpec{Namespaces: []string{cfg.ExcludedNamespaces[0]}},
	}
	for {
		err := c.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the API server still calls the webhook (last answer: %v): %w", err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URL is the webhook URL of the round robin (install's path).
func (p *ProcGuards) URL() string { return "https://" + p.rr.Addr() + webhook.Path }

// RoundRobin is the proxy in front of the replicas.
func (p *ProcGuards) RoundRobin() *RoundRobin { return p.rr }

// CABundle is the CA of the processes' serving certificate.
func (p *ProcGuards) CABundle() []byte { return p.caBundle }

// KubeconfigPath is the processes' kubeconfig (the service account token).
func (p *ProcGuards) KubeconfigPath() string { return p.kubeconfig }

// Replicas is the number of replicas.
func (p *ProcGuards) Replicas() int { return len(p.replicas) }

// WebhookAddr is replica i's own webhook host:port.
func (p *ProcGuards) WebhookAddr(i int) string { return p.replicas[i].webhookAddr }

// MetricsURL is replica i's metrics endpoint (http://host:port/metrics).
func (p *ProcGuards) MetricsURL(i int) string {
	return "http://" + p.replicas[i].metricsAddr + "/metrics"
}

// HealthURL is replica i's health server (append /healthz or /readyz).
func (p *ProcGuards) HealthURL(i int) string { return "http://" + p.replicas[i].healthAddr }

// PprofAddr is the pprof address of replica i ("" unless Pprof is set).
func (p *ProcGuards) PprofAddr(i int) string { return p.replicas[i].pprofAddr }

// Pid is the process ID of replica i, 0 when it is not running.
func (p *ProcGuards) Pid(i int) int {
	r := p.replicas[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || isClosed(r.done) {
		return 0
	}
	return r.cmd.Process.Pid
}

// LogPath is replica i's log file (stdout and stderr of every start).
func (p *ProcGuards) LogPath(i int) string { return p.replicas[i].logPath }

// WriteLogs copies every replica's log to w (for a failed test).
func (p *ProcGuards) WriteLogs(w io.Writer) {
	for i, r := range p.replicas {
		data, err := os.ReadFile(r.logPath)
		if err != nil {
			fmt.Fprintf(w, "--- replica %d: %v\n", i, err)
			continue
		}
		fmt.Fprintf(w, "--- replica %d (%s)\n%s", i, r.logPath, data)
	}
}
