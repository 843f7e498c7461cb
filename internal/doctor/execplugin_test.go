package doctor

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// TestRunExecPluginRefusals: a plugin configuration kubectl cannot use, or
// an answer that is not a credential, is reported in words; no credential
// is returned.
func TestRunExecPluginRefusals(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the plugins are shell scripts")
	}
	dir := t.TempDir()
	v1 := "client.authentication.k8s.io/v1"
	tests := []struct {
		name   string
		ec     clientcmdapi.ExecConfig
		script string
		want   string
	}{
		{"removed apiVersion", clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1alpha1"}, "", `apiVersion "client.authentication.k8s.io/v1alpha1" of the exec plugin is not supported`},
		{"foreign apiVersion", clientcmdapi.ExecConfig{APIVersion: "example.com/v1"}, "", `apiVersion "example.com/v1" of the exec plugin is not supported`},
		{"needs a terminal", clientcmdapi.ExecConfig{APIVersion: v1, InteractiveMode: clientcmdapi.AlwaysExecInteractiveMode}, "", "needs a terminal"},
		{"not JSON", clientcmdapi.ExecConfig{APIVersion: v1}, "echo hello\n", "its output is not an ExecCredential"},
		{"other version", clientcmdapi.ExecConfig{APIVersion: v1}, `echo '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"t0ken-abcdef"}}'` + "\n", "the plugin answered with client.authentication.k8s.io/v1beta1, but the kubeconfig asks for client.authentication.k8s.io/v1"},
		{"no token", clientcmdapi.ExecConfig{APIVersion: v1}, `echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{}}'` + "\n", "returned no token and no client certificate"},
		{"certificate without key", clientcmdapi.ExecConfig{APIVersion: v1}, `echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientCertificateData":"x"}}'` + "\n", "without its key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ec := tt.ec
			ec.Command = "/nonexistent/plugin"
			if tt.script != "" {
				ec.Command = writeScript(t, dir, strings.ReplaceAll(tt.name, " ", "-"), tt.script)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg, res := runExecPlugin(ctx, &rest.Config{Host: "https://127.0.0.1:6443", ExecProvider: &ec}, nil)
			if cfg != nil || res.OK || !strings.Contains(res.Error, tt.want) {
				t.Fatalf("config %v, result %+v; want the error %q", cfg != nil, res, tt.want)
			}
			if strings.Contains(res.Error, "t0ken-abcdef") {
				t.Errorf("the token is in the error: %s", res.Error)
			}
		})
	}
}

// TestRunExecPluginToken: a token answer becomes the bearer token of the
// returned configuration, and the plugin is gone from it.
func TestRunExecPluginToken(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the plugin is a shell script")
	}
	plugin := writeScript(t, t.TempDir(), "kubelogin", `echo '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"t0ken-abcdef"}}'`+"\n")
	ec := &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1beta1", Command: plugin}
	cfg, res := runExecPlugin(context.Background(), &rest.Config{Host: "https://127.0.0.1:6443", ExecProvider: ec}, nil)
	if cfg == nil || !res.OK || cfg.BearerToken != "t0ken-abcdef" || cfg.ExecProvider != nil || res.ExitCode != 0 {
		t.Fatalf("config %+v, result %+v", cfg, res)
	}
}
