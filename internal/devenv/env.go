// Package devenv runs a real local control plane (etcd and kube-apiserver)
// for `tenantguard dev` and for the tests. The binaries are built once from
// the Go module proxy and cached (see EnsureBinaries); controller-runtime's
// envtest starts and stops the processes.
package devenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Options configure a control plane.
type Options struct {
	Binaries Binaries
	// CRDs are installed before Start returns.
	CRDs []*apiextensionsv1.CustomResourceDefinition
	// Scheme is used by envtest to install CRDs; nil means client-go's.
	Scheme *runtime.Scheme
	// Logs receives the output of etcd and kube-apiserver; nil discards it.
	Logs io.Writer
	// APIServerFlags are extra kube-apiserver flags (name without dashes).
	APIServerFlags map[string]string
}

// Env is a running control plane.
type Env struct {
	// Config is a cluster-admin (system:masters) client configuration.
	Config   *rest.Config
	Binaries Binaries
	env      *envtest.Environment
	certDir  string
}

// Start starts etcd and kube-apiserver on loopback and waits until the API
// server serves requests.
func Start(ctx context.Context, opts Options) (*Env, error) {
	env := &envtest.Environment{
		CRDs:                     opts.CRDs,
		Scheme:                   opts.Scheme,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{Path: opts.Binaries.Etcd, Out: opts.Logs, Err: opts.Logs}
	api := env.ControlPlane.GetAPIServer()
	api.Path = opts.Binaries.APIServer
	api.Out, api.Err = opts.Logs, opts.Logs
	api.SecureServing.ListenAddr.Address = "127.0.0.1"
	// A certificate directory of our own survives a restart of the API
	// server (RestartAPIServer): same serving and service account keys,
	// so clients and tokens stay valid.
	certDir, err := os.MkdirTemp("", "tenantguard-apiserver-")
	if err != nil {
		return nil, err
	}
	api.CertDir = certDir
	for name, value := range opts.APIServerFlags {
		api.Configure().Set(name, value)
	}
	env.ControlPlane.KubectlPath = opts.Binaries.Kubectl

	type result struct {
		cfg *rest.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, err := env.Start()
		done <- result{cfg, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			_ = env.Stop()
			os.RemoveAll(certDir)
			return nil, fmt.Errorf("start control plane: %w", r.err)
		}
		return &Env{Config: r.cfg, Binaries: opts.Binaries, env: env, certDir: certDir}, nil
	case <-ctx.Done():
		r := <-done // envtest has its own start timeout; wait so no process is left behind
		if r.err == nil {
			_ = env.Stop()
		}
		os.RemoveAll(certDir)
		return nil, ctx.Err()
	}
}

// Stop stops kube-apiserver and etcd and removes their data.
func (e *Env) Stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	defer os.RemoveAll(e.certDir)
	return e.env.Stop()
}

// StopAPIServer kills kube-apiserver (etcd keeps running): an outage as the
// guard sees it, without the API server's graceful shutdown, which waits
// for its watches. StartAPIServer brings it back on the same address, with
// the same certificates and keys. Linux only (it finds the process in
// /proc).
func (e *Env) StopAPIServer() error {
	pid, err := findProcess(e.Binaries.APIServer, "--cert-dir="+e.certDir)
	if err != nil {
		return err
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if err := p.Kill(); err != nil {
		return fmt.Errorf("kill kube-apiserver: %w", err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/cmdline", pid)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver (pid %d) did not exit", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The process has exited: Stop only resets envtest's record of it.
	return e.env.ControlPlane.GetAPIServer().Stop()
}

// findProcess returns the pid of the process running binary with arg.
func findProcess(binary, arg string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("find %s: %w", filepath.Base(binary), err)
	}
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && args[0] == binary && slices.Contains(args, arg) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s process with %s", filepath.Base(binary), arg)
}

// StartAPIServer starts kube-apiserver again after StopAPIServer and waits
// until it is healthy.
func (e *Env) StartAPIServer() error {
	return e.env.ControlPlane.GetAPIServer().Start()
}

// AddUser returns a client configuration that authenticates as the given
// user and groups with a client certificate. It has no rights until RBAC
// grants some.
func (e *Env) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := e.env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, rest.CopyConfig(e.Config))
	if err != nil {
		return nil, fmt.Errorf("add user %q: %w", name, err)
	}
	return u.Config(), nil
}

// WriteKubeconfig writes a kubeconfig for cfg to path, creating its
// directory. The file holds credentials and is private to the user.
func WriteKubeconfig(path string, cfg *rest.Config, contextName string) error {
	data, err := Kubeconfig(cfg, contextName)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
