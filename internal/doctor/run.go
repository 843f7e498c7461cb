package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// DefaultTimeout bounds each network step when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Options configure one diagnosis. The zero value checks the current
// context of the default kubeconfig, with the process environment and the
// system resolver.
type Options struct {
	// Kubeconfig is a kubeconfig file (--kubeconfig); empty means KUBECONFIG
	// or ~/.kube/config, as kubectl.
	Kubeconfig string
	// Context is the context to check (--context); empty means the
	// current-context.
	Context string
	// DNSServers are extra DNS servers to ask, side by side with the system
	// resolver: "IP" or "IP:port" (see ParseDNSServer).
	DNSServers []string
	// Namespace, when set, adds the question "may I list pods there?".
	Namespace string
	// Timeout bounds each network step (each DNS lookup, the TCP connect,
	// the TLS handshake, each API request). Zero means DefaultTimeout.
	Timeout time.Duration
	// ExpiryWarning is how close to expiry the server certificate may be
	// before the tls step warns. Zero means DefaultExpiryWarning.
	ExpiryWarning time.Duration
	// Getenv reads the environment (proxy variables, KUBECONFIG, HOME).
	// Nil means os.Getenv.
	Getenv func(string) string
	// Resolver is the system resolver. Nil means net.DefaultResolver.
	Resolver *net.Resolver
	// Now is the clock for certificate checks. Nil means time.Now.
	Now func() time.Time
	// Shell is the user's OS and shell, for which Fix lines are written
	// (export or $env:, and how to make a setting permanent). The zero
	// value means this machine's: DetectShell(runtime.GOOS, Getenv).
	Shell Shell
	// Stderr receives an exec credential plugin's messages while it runs,
	// as kubectl shows them (a device-code login prompt). Nil discards
	// them; the report quotes them when the plugin fails.
	Stderr io.Writer
}

// ErrBadInput is matched (errors.Is) by every error Run returns: the input
// (flags, kubeconfig, context) is unusable, so there is nothing to
// diagnose. A problem found on the way to the server is not an error but a
// FAIL step in the Report.
var ErrBadInput = errors.New("bad input")

type inputError struct{ msg string }

func (e *inputError) Error() string        { return e.msg }
func (e *inputError) Is(target error) bool { return target == ErrBadInput }

func inputErrorf(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// Run diagnoses the way from this machine to the API server of the chosen
// kubeconfig context. It returns an error (ErrBadInput) only when the input
// cannot be used; every finding about the network, TLS or the API server is
// a step of the Report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Shell.OS == "" {
		opts.Shell = DetectShell(runtime.GOOS, opts.Getenv)
	}
	if opts.Timeout < 0 {
		return nil, inputErrorf("--timeout must be positive, not %s", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.ExpiryWarning == 0 {
		opts.ExpiryWarning = DefaultExpiryWarning
	}
	var servers []netip.AddrPort
	for _, s := range opts.DNSServers {
		ap, err := ParseDNSServer(s)
		if err != nil {
			return nil, inputErrorf("--dns-server: %v", err)
		}
		servers = append(servers, ap)
	}
	home := opts.Getenv("HOME")
	if home == "" {
		home = opts.Getenv("USERPROFILE")
	}
	t, err := LoadTarget(LoadOptions{Path: opts.Kubeconfig, Context: opts.Context, KubeconfigEnv: opts.Getenv("KUBECONFIG"), Home: home})
	if err != nil {
		return nil, err
	}

	rep := &Report{Context: t.Context, Cluster: t.Cluster, Server: t.Server, Shell: opts.Shell, Target: t}

	// 1. kubeconfig
	kstep, restCfg := kubeconfigStep(t)
	rep.add(kstep)

	// 3 is decided before 2: a proxy changes who resolves the name.
	name := ClassifyName(t.Host)
	rep.Name = &name
	penv := ProxyEnvFrom(opts.Getenv)
	if opts.Shell.OS == "windows" {
		// Windows variable names ignore case: there is nothing to disagree.
		penv.Conflicts = nil
	}
	decision := DecideProxy(ProxyInput{URL: t.URL(), ClusterProxyURL: t.proxyURL, Env: penv, Name: name})
	rep.Proxy = &decision

	// 2. name
	var lookups []Lookup
	if name.Kind != NameIP {
		lookups = Resolve(ctx, t.Host, ResolveInput{System: opts.Resolver, Servers: servers, Timeout: opts.Timeout})
		rep.Lookups = lookups
	}
	nr := nameStep(name, lookups, decision.UsesProxy())
	rep.add(nr.step)

	// 3. proxy
	private := false
	for _, a := range nr.addrs {
		private = private || ClassifyIP(a) != IPPublic
	}
	pstep := proxyStep(&decision, name, private, opts.Shell, t.Cluster)

	// 4. tcp
	tcp, conn, netConn, rt := tcpStep(ctx, t, &decision, nr, opts.Timeout, opts.Shell)
	if pstep.Status == StatusWarn && conn != nil && conn.Via == "proxy" && conn.OK {
		// The warning was a prediction; this proxy does reach the server.
		pstep.Status, pstep.Fixes = StatusOK, nil
		pstep.evidence("this proxy does reach %s (see tcp)", t.HostPort())
	}
	addCaseConflicts(&pstep, penv, opts.Shell)
	rep.add(pstep)
	rep.Connection = conn
	rep.add(tcp)

	// 5. tls
	tlsOK := false
	switch {
	case netConn == nil:
		rep.add(Step{Name: StepTLS, Status: StatusSkip, Summary: "no connection (see tcp)"})
	case t.Scheme != "https":
		netConn.Close()
		tlsOK = true
		rep.add(Step{Name: StepTLS, Status: StatusSkip, Summary: "the server URL is plain http://"})
	case t.CA.Error != "":
		netConn.Close()
		rep.add(Step{Name: StepTLS, Status: StatusSkip, Summary: "the kubeconfig CA is unusable (see kubeconfig)"})
	default:
		tctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		res := CheckTLS(tctx, TLSInput{Conn: netConn, ServerName: t.VerifyName(), Roots: t.CA.pool, Now: opts.Now()})
		cancel()
		rep.TLS = &res
		s := tlsStep(t, res, rt, rt.proxy != nil, opts.ExpiryWarning)
		tlsOK = s.Status != StatusFail
		rep.add(s)
	}

	// 6. api
	switch {
	case restCfg == nil:
		rep.add(Step{Name: StepAPI, Status: StatusSkip, Summary: "no client configuration (see kubeconfig)"})
	case rt == nil || !tlsOK:
		rep.add(Step{Name: StepAPI, Status: StatusSkip, Summary: "no working connection (see tcp and tls)"})
	default:
		var plugin *ExecPlugin
		cfg := restCfg
		if cfg.ExecProvider != nil {
			// The doctor runs the plugin itself, so that a plugin that
			// hangs is killed with all it started, and one that fails is
			// reported with its own words.
			limit := 4 * opts.Timeout
			pctx, cancel := context.WithTimeout(ctx, limit)
			cfg, plugin = runExecPlugin(pctx, restCfg, opts.Stderr)
			cancel()
			if cfg == nil {
				s := execStep(plugin, restCfg.ExecProvider, limit)
				rep.API = &APIResult{ExecPlugin: plugin}
				rep.add(s)
				return rep, nil
			}
		}
		s, res := runAPI(ctx, apiClientConfig(cfg, rt, opts.Timeout), t.Auth, opts.Namespace, opts.Timeout)
		if plugin != nil {
			res.ExecPlugin = plugin
			s.Evidence = append([]string{fmt.Sprintf("the exec plugin %s returned credentials", plugin.Command)}, s.Evidence...)
		}
		if rt.hypothetical != "" {
			s.Evidence = append([]string{fmt.Sprintf("checked over %s (%s)", rt.describe(), rt.hypothetical)}, s.Evidence...)
		}
		rep.API = res
		rep.add(s)
	}
	return rep, nil
}

// runAPI bounds the API checks as a whole.
func runAPI(ctx context.Context, cfg *rest.Config, auth AuthInfo, namespace string, timeout time.Duration) (Step, *APIResult) {
	limit := 4 * timeout
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	type result struct {
		s   Step
		res *APIResult
	}
	done := make(chan result, 1)
	go func() {
		s, res := checkAPI(ctx, cfg, auth, namespace)
		done <- result{s, res}
	}()
	select {
	case r := <-done:
		return r.s, r.res
	case <-ctx.Done():
		return Step{Name: StepAPI, Status: StatusFail,
			Summary: fmt.Sprintf("the API checks did not finish within %s", limit),
			Fixes:   []string{"the API server accepts connections but does not answer in time: run the doctor again with a longer --timeout, and check the control plane's health (AKS: az aks show -g <resource-group> -n <cluster> --query powerState)"},
		}, &APIResult{}
	}
}

// kubeconfigStep describes the target and builds kubectl's client
// configuration from it (nil when kubectl could not).
func kubeconfigStep(t *Target) (Step, *rest.Config) {
	s := Step{Name: StepKubeconfig, Status: StatusOK}
	s.Summary = fmt.Sprintf("context %q: cluster %q, user %q, server %s", t.Context, t.Cluster, t.User, t.Server)
	if len(t.Files) > 0 {
		s.evidence("file: %s", strings.Join(t.Files, ", "))
	}
	t.CA.load()
	switch {
	case t.CA.Error != "":
		s.Status = StatusFail
		s.evidence("CA (%s): %s", t.CA.Source, t.CA.Error)
		s.fix("fetch the kubeconfig again (az aks get-credentials -g <resource-group> -n <cluster>) or fix certificate-authority/certificate-authority-data of cluster %q", t.Cluster)
	case t.CA.Source == "system roots":
		s.evidence("CA: the system roots (the cluster has no certificate-authority)")
	default:
		where := t.CA.Source
		if t.CA.File != "" {
			where += " " + t.CA.File
		}
		subjects := make([]string, len(t.CA.Certificates))
		for i, c := range t.CA.Certificates {
			subjects[i] = fmt.Sprintf("%q (until %s)", c.Subject, c.NotAfter.UTC().Format(time.DateOnly))
		}
		s.evidence("CA: %s: %s", where, strings.Join(subjects, ", "))
	}
	if len(t.Auth.Kinds) == 0 {
		s.evidence("credentials: none (anonymous)")
	} else {
		s.evidence("credentials: %s (secrets are never shown)", strings.Join(t.Auth.Kinds, ", "))
	}
	for _, d := range t.Auth.Details {
		s.evidence("  %s", d)
	}
	if t.TLSServerName != "" {
		s.evidence("tls-server-name: %s (the certificate must be valid for this name)", t.TLSServerName)
	}
	if t.ProxyURL != "" {
		s.evidence("proxy-url: %s (kubectl sends every request for this cluster through it)", t.ProxyURL)
	}
	for _, w := range t.Warnings {
		if s.Status == StatusOK {
			s.Status = StatusWarn
		}
		s.evidence("warning: %s", w)
	}
	cfg, err := clientcmd.NewNonInteractiveClientConfig(*t.raw, t.Context, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		s.Status = StatusFail
		s.evidence("kubectl cannot build a client from this context: %v", err)
		if t.CA.Error == "" {
			s.fix("fix the files the kubeconfig names for user %q, or fetch the kubeconfig again (az aks get-credentials -g <resource-group> -n <cluster>)", t.User)
		}
		return s, nil
	}
	return s, cfg
}
