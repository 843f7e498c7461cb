package doctor

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/pkg/apis/clientauthentication"
	"k8s.io/client-go/pkg/apis/clientauthentication/install"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ExecPlugin is what the doctor saw when it ran the kubeconfig's exec
// credential plugin (kubelogin on AKS). It holds no credential.
type ExecPlugin struct {
	// Command is the plugin's file name; arguments and environment are
	// not shown (they may hold secrets).
	Command string `json:"command"`
	OK      bool   `json:"ok"`
	// ExitCode is the plugin's exit code when it failed; -1 when it was
	// killed or did not start.
	ExitCode int `json:"exitCode,omitempty"`
	// TimedOut is set when the plugin did not finish in time and was
	// killed, with every process it started.
	TimedOut bool `json:"timedOut,omitempty"`
	// Stderr is the end of what the plugin wrote to stderr, with the
	// values of its arguments and environment removed.
	Stderr []string `json:"stderr,omitempty"`
	// Error says what went wrong in words.
	Error string `json:"error,omitempty"`
}

const (
	execInfoEnv    = "KUBERNETES_EXEC_INFO"
	maxStderrLines = 20
	maxStdout      = 1 << 20
)

var execCodecs = func() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	return serializer.NewCodecFactory(scheme)
}()

// runExecPlugin runs the exec credential plugin of cfg as client-go does
// (the same command, arguments, environment and KUBERNETES_EXEC_INFO, not
// interactive), but in its own process group, so that when ctx ends the
// plugin and everything it started are killed, and with its exit code and
// stderr kept for the report. stderr, when not nil, also receives the
// plugin's stderr as it runs (a device-code prompt). On success it returns
// a copy of cfg that carries the credential instead of the plugin.
func runExecPlugin(ctx context.Context, cfg *rest.Config, stderr io.Writer) (*rest.Config, *ExecPlugin) {
	ec := cfg.ExecProvider
	res := &ExecPlugin{Command: filepath.Base(ec.Command), ExitCode: -1}
	gv, err := schema.ParseGroupVersion(ec.APIVersion)
	if err != nil || gv.Group != clientauthentication.SchemeGroupVersion.Group {
		res.Error = fmt.Sprintf("apiVersion %q of the exec plugin is not supported: use client.authentication.k8s.io/v1", ec.APIVersion)
		return nil, res
	}
	if ec.InteractiveMode == clientcmdapi.AlwaysExecInteractiveMode {
		res.Error = "the plugin needs a terminal (interactiveMode: Always); the doctor runs it without one"
		return nil, res
	}
	cred := &clientauthentication.ExecCredential{}
	if ec.ProvideClusterInfo {
		if cred.Spec.Cluster, err = rest.ConfigToExecCluster(cfg); err != nil {
			res.Error = fmt.Sprintf("describe the cluster to the plugin: %v", err)
			return nil, res
		}
	}
	info, err := runtime.Encode(execCodecs.LegacyCodec(gv), cred)
	if err != nil {
		res.Error = fmt.Sprintf("apiVersion %q of the exec plugin is not supported (%v): use client.authentication.k8s.io/v1", ec.APIVersion, err)
		return nil, res
	}

	cmd := exec.CommandContext(ctx, ec.Command, ec.Args...)
	cmd.Env = os.Environ()
	for _, e := range ec.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	cmd.Env = append(cmd.Env, execInfoEnv+"="+string(info))
	var stdout bytes.Buffer
	tail := &tailBuffer{max: 16 << 10}
	cmd.Stdout = &limitWriter{w: &stdout, n: maxStdout}
	cmd.Stderr = tail
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(tail, stderr)
	}
	startProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessGroup(cmd.Process) }
	// After the kill, or after the plugin exits, wait this long at most for
	// a process that escaped the group and still holds stdout or stderr.
	cmd.WaitDelay = 2 * time.Second

	err = cmd.Run()
	res.Stderr = redactLines(tail.lines(maxStderrLines), ec)
	var exitErr *exec.ExitError
	switch {
	case err != nil && ctx.Err() != nil:
		res.TimedOut = true
		res.Error = "the plugin did not finish in time and was stopped, with every process it started"
		return nil, res
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist):
		res.Error = fmt.Sprintf("%s is not installed (not found in PATH)", ec.Command)
		if strings.ContainsAny(ec.Command, `/\`) {
			res.Error = fmt.Sprintf("%s is not installed (no such file)", ec.Command)
		}
		return nil, res
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
		res.Error = fmt.Sprintf("the plugin failed with exit code %d", res.ExitCode)
		return nil, res
	case err != nil:
		res.Error = fmt.Sprintf("run the plugin: %v", err)
		return nil, res
	}
	res.ExitCode = 0

	out := &clientauthentication.ExecCredential{}
	_, gvk, err := execCodecs.UniversalDecoder(gv).Decode(stdout.Bytes(), nil, out)
	switch {
	case err != nil:
		res.Error = fmt.Sprintf("the plugin exited 0 but its output is not an ExecCredential: %v", err)
		return nil, res
	case gvk.Group != gv.Group || gvk.Version != gv.Version:
		res.Error = fmt.Sprintf("the plugin answered with %s, but the kubeconfig asks for %s", gvk.GroupVersion(), gv)
		return nil, res
	case out.Status == nil || (out.Status.Token == "" && out.Status.ClientCertificateData == ""):
		res.Error = "the plugin exited 0 but returned no token and no client certificate"
		return nil, res
	case (out.Status.ClientCertificateData == "") != (out.Status.ClientKeyData == ""):
		res.Error = "the plugin returned a client certificate without its key, or a key without its certificate"
		return nil, res
	}
	c := rest.CopyConfig(cfg)
	c.ExecProvider = nil
	if out.Status.Token != "" {
		c.BearerToken, c.BearerTokenFile = out.Status.Token, ""
	}
	if out.Status.ClientCertificateData != "" {
		if _, err := tls.X509KeyPair([]byte(out.Status.ClientCertificateData), []byte(out.Status.ClientKeyData)); err != nil {
			res.Error = fmt.Sprintf("the plugin returned an unusable client certificate: %v", err)
			return nil, res
		}
		c.CertData, c.KeyData = []byte(out.Status.ClientCertificateData), []byte(out.Status.ClientKeyData)
		c.CertFile, c.KeyFile = "", ""
	}
	res.OK = true
	return c, res
}

// execStep is the api step when the plugin failed: what it said, and what
// to run.
func execStep(res *ExecPlugin, ec *clientcmdapi.ExecConfig, limit time.Duration) Step {
	s := Step{Name: StepAPI, Status: StatusFail}
	s.Summary = fmt.Sprintf("the exec credential plugin %s gave no credentials: %s", res.Command, res.Error)
	if res.TimedOut {
		s.Summary = fmt.Sprintf("the exec credential plugin %s did not finish within %s and was stopped", res.Command, limit)
	}
	if len(res.Stderr) > 0 {
		s.evidence("%s wrote to stderr:", res.Command)
		for _, l := range res.Stderr {
			s.evidence("  %s", l)
		}
	} else if !res.OK && res.ExitCode > 0 {
		s.evidence("%s wrote nothing to stderr", res.Command)
	}
	for _, f := range execFixes(res, ec) {
		s.fix("%s", f)
	}
	return s
}

var (
	reAzLogin   = regexp.MustCompile(`(?i)az login|azure ?cli|AADSTS(50076|50079|53003|50173|70043|700082)|interaction_required|expired`)
	reBadArgs   = regexp.MustCompile(`(?i)unknown (flag|command|shorthand)|invalid (login|argument)|unsupported login`)
	reNoLogin   = regexp.MustCompile(`(?i)devicecode|device code|devicelogin`)
	reKubelogin = regexp.MustCompile(`(?i)^kubelogin(\.exe)?$`)
)

// execFixes says what to run, from the plugin's name and what it wrote.
func execFixes(res *ExecPlugin, ec *clientcmdapi.ExecConfig) []string {
	stderr := strings.Join(res.Stderr, "\n")
	kubelogin := reKubelogin.MatchString(res.Command)
	var fixes []string
	switch {
	case res.ExitCode == -1 && !res.TimedOut && strings.Contains(res.Error, "not installed"):
		if kubelogin {
			fixes = append(fixes, "install kubelogin (az aks install-cli installs kubectl and kubelogin), or put it in PATH")
		} else {
			fixes = append(fixes, fmt.Sprintf("install %s, or put it in PATH", res.Command))
		}
		if ec.InstallHint != "" {
			fixes = append(fixes, "the kubeconfig says: "+strings.TrimSpace(ec.InstallHint))
		}
	case res.TimedOut && kubelogin:
		fixes = append(fixes,
			"kubelogin is probably waiting for a login (device code): run kubectl get --raw /readyz once and complete the login it asks for, then run the doctor again",
			"or let kubelogin use the Azure CLI's login, which needs no prompt: az login, then kubelogin convert-kubeconfig -l azurecli")
	case res.TimedOut:
		fixes = append(fixes, fmt.Sprintf("%s may be waiting for a login: run kubectl get --raw /readyz once and complete it, then run the doctor again", res.Command))
	case reBadArgs.MatchString(stderr) && kubelogin:
		fixes = append(fixes, "the kubeconfig's kubelogin arguments do not fit the installed kubelogin: update it (az aks install-cli), then convert the kubeconfig again: kubelogin convert-kubeconfig -l azurecli")
	case reAzLogin.MatchString(stderr):
		fixes = append(fixes, "log in to Azure again: az login (then run the doctor again)")
		if kubelogin && reNoLogin.MatchString(stderr) {
			fixes = append(fixes, "kubelogin's cached device-code token is stale: kubelogin remove-cache-dir, then kubelogin convert-kubeconfig -l azurecli")
		}
	case kubelogin:
		fixes = append(fixes, "let kubelogin use the Azure CLI's login: az login, then kubelogin convert-kubeconfig -l azurecli (or fetch the kubeconfig again: az aks get-credentials -g <resource-group> -n <cluster>)")
	case res.ExitCode == -1 && strings.Contains(res.Error, "interactiveMode"):
		fixes = append(fixes, "run kubectl get --raw /readyz once in a terminal to log in, then run the doctor again")
	default:
		fixes = append(fixes, fmt.Sprintf("run kubectl get --raw /readyz to see %s's own message, fix what it says, then run the doctor again", res.Command))
	}
	return fixes
}

// redactLines removes the values of the plugin's arguments and environment
// (a --client-secret, an AAD_SERVICE_PRINCIPAL_CLIENT_SECRET) from lines.
func redactLines(lines []string, ec *clientcmdapi.ExecConfig) []string {
	var secrets []string
	for _, a := range ec.Args {
		if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			a = v
		}
		if len(a) >= 8 && !strings.HasPrefix(a, "-") {
			secrets = append(secrets, a)
		}
	}
	for _, e := range ec.Env {
		if len(e.Value) >= 8 {
			secrets = append(secrets, e.Value)
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		for _, s := range secrets {
			l = strings.ReplaceAll(l, s, "xxxxx")
		}
		for _, s := range secrets {
			if strings.Contains(l, s) { // the mask itself rebuilt it ("xxxxxxxx")
				l = "xxxxx"
			}
		}
		out[i] = l
	}
	return out
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

// lines are the last n non-empty lines, trimmed.
func (t *tailBuffer) lines(n int) []string {
	var out []string
	for _, l := range strings.Split(string(t.b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// limitWriter keeps the first n bytes and discards the rest, so a plugin
// cannot fill memory.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
		l.n -= k
	}
	return len(p), nil
}
