package doctor

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kubeconfigDoc renders a one-context kubeconfig with the given cluster and
// user fields (YAML lines, already indented by four spaces).
func kubeconfigDoc(cluster, user string) string {
	return `apiVersion: v1
kind: Config
current-context: aks
contexts:
- name: aks
  context:
    cluster: aks
    user: aks-user
clusters:
- name: aks
  cluster:
` + cluster + `
users:
- name: aks-user
  user:
` + user + "\n"
}

func TestParseKubeconfig(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	caData := base64.StdEncoding.EncodeToString(ca.pem)
	server := "    server: https://" + testAKSName + ":443"
	tests := []struct {
		name    string
		doc     string
		context string
		check   func(t *testing.T, tg *Target)
		wantErr string
	}{
		{
			name: "AKS private cluster with kubelogin",
			doc: kubeconfigDoc(server+"\n    certificate-authority-data: "+caData,
				"    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n      args: [get-token, --login, azurecli, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630, --client-secret, s3cr3t]\n      env:\n      - name: AAD_SERVICE_PRINCIPAL_CLIENT_SECRET\n        value: s3cr3t"),
			check: func(t *testing.T, tg *Target) {
				if tg.Host != testAKSName || tg.Port != "443" || tg.Scheme != "https" || tg.CA.Source != "certificate-authority-data" || tg.CA.pool == nil {
					t.Errorf("target %+v", tg)
				}
				if got := strings.Join(tg.Auth.Details, " "); !strings.Contains(got, "exec plugin kubelogin --login azurecli") || strings.Contains(got, "s3cr3t") {
					t.Errorf("auth details %q", got)
				}
			},
		},
		{
			name: "default port, tls-server-name, proxy-url with a password",
			doc:  kubeconfigDoc("    server: https://10.224.0.4\n    tls-server-name: "+testAKSName+"\n    proxy-url: http://alice:pr0xy-pa55@proxy.corp.example:3128", "    token: t0ken-value"),
			check: func(t *testing.T, tg *Target) {
				if tg.Port != "443" || tg.VerifyName() != testAKSName || tg.ProxyURL != "http://alice:xxxxx@proxy.corp.example:3128" || tg.CA.Source != "system roots" {
					t.Errorf("target %+v", tg)
				}
				if strings.Join(tg.Auth.Kinds, ",") != "token" {
					t.Errorf("auth kinds %v", tg.Auth.Kinds)
				}
			},
		},
		{
			name: "no scheme means plain http, as client-go",
			doc:  kubeconfigDoc("    server: 10.224.0.4:6443", "    token: t0ken-value"),
			check: func(t *testing.T, tg *Target) {
				if tg.Scheme != "http" || tg.Port != "6443" || len(tg.Warnings) == 0 {
					t.Errorf("target %+v", tg)
				}
			},
		},
		{
			name: "CA file named, not read",
			doc:  kubeconfigDoc(server+"\n    certificate-authority: /nonexistent/ca.crt\n    insecure-skip-tls-verify: false", "    username: admin\n    password: b4sic-pa55"),
			check: func(t *testing.T, tg *Target) {
				if tg.CA.File != "/nonexistent/ca.crt" || tg.CA.Error != "" {
					t.Errorf("CA %+v", tg.CA)
				}
				if strings.Contains(strings.Join(tg.Auth.Details, " "), "b4sic-pa55") {
					t.Error("password in the details")
				}
			},
		},
		{name: "garbled YAML", doc: "clusters: [\n", wantErr: "parse kubeconfig"},
		{name: "empty", doc: "", wantErr: "no contexts"},
		{name: "unknown context", doc: kubeconfigDoc(server, ""), context: "prod", wantErr: `context "prod" is not in the kubeconfig (contexts: aks)`},
		{name: "no current context", doc: strings.Replace(kubeconfigDoc(server, ""), "current-context: aks", "", 1), wantErr: "pass --context (one of aks)"},
		{name: "missing cluster", doc: strings.Replace(kubeconfigDoc(server, ""), "cluster: aks\n    user", "cluster: gone\n    user", 1), wantErr: `uses cluster "gone"`},
		{name: "missing user", doc: strings.Replace(kubeconfigDoc(server, ""), "user: aks-user\nclusters", "user: gone\nclusters", 1), wantErr: `uses user "gone"`},
		{name: "no server", doc: kubeconfigDoc("    insecure-skip-tls-verify: true", ""), wantErr: "has no server URL"},
		{name: "bad scheme", doc: kubeconfigDoc("    server: ftp://"+testAKSName, ""), wantErr: "must be an https:// URL"},
		{name: "no host", doc: kubeconfigDoc("    server: https://:443", ""), wantErr: "has no host"},
		{name: "unsupported proxy-url", doc: kubeconfigDoc(server+"\n    proxy-url: socks4://proxy:1080", ""), wantErr: `proxy-url scheme "socks4"`},
		{name: "bad proxy-url keeps its password hidden", doc: kubeconfigDoc(server+"\n    proxy-url: \"http://alice:pa%zz@proxy:3128\"", ""), wantErr: "http://xxxxx@proxy:3128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg, err := ParseKubeconfig([]byte(tt.doc), tt.context)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrBadInput) {
					t.Errorf("err %v is not ErrBadInput", err)
				}
				if strings.Contains(err.Error(), "pa%zz") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, tg)
		})
	}
}

func TestLoadTarget(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "cluster-ca")
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	doc := kubeconfigDoc("    server: https://"+testAKSName+"\n    certificate-authority: ca.crt", "    token: t0ken-value")
	path := filepath.Join(dir, "config")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}

	// KUBECONFIG list, with a missing file as kubectl tolerates; the CA
	// path is relative to the kubeconfig.
	tg, err := LoadTarget(LoadOptions{KubeconfigEnv: filepath.Join(dir, "missing") + string(filepath.ListSeparator) + path})
	if err != nil {
		t.Fatal(err)
	}
	if tg.CA.File != filepath.Join(dir, "ca.crt") || len(tg.Files) != 1 {
		t.Fatalf("target %+v", tg)
	}
	tg.CA.load()
	if tg.CA.Error != "" || len(tg.CA.Certificates) != 1 {
		t.Fatalf("CA %+v", tg.CA)
	}

	// The default location is <home>/.kube/config.
	if _, err := LoadTarget(LoadOptions{Home: dir}); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), filepath.Join(dir, ".kube", "config")) {
		t.Errorf("missing default kubeconfig: %v", err)
	}
	if _, err := LoadTarget(LoadOptions{Path: filepath.Join(dir, "nope")}); !errors.Is(err, ErrBadInput) {
		t.Errorf("missing --kubeconfig: %v", err)
	}
	if _, err := LoadTarget(LoadOptions{Path: path, Context: "nope"}); !errors.Is(err, ErrBadInput) {
		t.Errorf("unknown context: %v", err)
	}
}
