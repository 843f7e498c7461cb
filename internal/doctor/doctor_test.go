package doctor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
)

// fixture is the real world of these tests, all on loopback: the control
// plane, an Azure-like DNS server that knows the private zone (the AKS name
// resolves to 127.0.0.1, where the API server listens) and an on-prem-like
// one that answers NXDOMAIN.
type fixture struct {
	env     *devenv.Env
	port    string // the API server's port on 127.0.0.1
	aksHost string // the AKS private FQDN, resolved by azure to 127.0.0.1
	azure   *dnsServer
	onprem  *dnsServer
	dir     string
	secrets []string // strings no report may contain
}

const fieldNoProxy = ".corp.example,10.0.0.0/8,localhost"

func TestAgainstControlPlane(t *testing.T) {
	env := devenvtest.Start(t, devenv.Options{})
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{env: env, port: u.Port(), aksHost: testAKSName, dir: t.TempDir()}
	f.azure = startDNS(t, "127.0.0.2", map[string][]string{f.aksHost: {"127.0.0.1"}})
	f.onprem = startDNS(t, "127.0.0.3", nil)
	key := env.Config.KeyData
	f.secrets = []string{string(key), base64.StdEncoding.EncodeToString(key)[:40], strings.Split(string(key), "\n")[1]}
	aksServer := "https://" + net.JoinHostPort(f.aksHost, f.port)

	t.Run("healthy", func(t *testing.T) {
		kc := f.kubeconfig(t, "healthy", env.Config, nil)
		// A proxy is configured, but Go never proxies loopback.
		rep := f.run(t, Options{Kubeconfig: kc, Namespace: "default", ExpiryWarning: 24 * time.Hour,
			Getenv: envMap("HTTPS_PROXY", "http://127.0.0.1:9", "NO_PROXY", fieldNoProxy), Resolver: goResolver(f.onprem.Addr)})
		for _, s := range rep.Steps {
			if s.Status != StatusOK {
				t.Errorf("%s: %s %s", s.Name, s.Status, s.Summary)
			}
		}
		if len(rep.Steps) != 6 || rep.Result != StatusOK {
			t.Fatalf("result %s with %d steps", rep.Result, len(rep.Steps))
		}
		if rep.API.User == "" || !contains(rep.API.Groups, "system:masters") || rep.API.CanListPods == nil || !*rep.API.CanListPods {
			t.Errorf("api result %+v", rep.API)
		}
		if rep.Proxy.Bypass != BypassLoopback {
			t.Errorf("proxy decision %+v", rep.Proxy)
		}
	})

	t.Run("certificate expiring within 30 days warns", func(t *testing.T) {
		// envtest's serving certificates live one week.
		kc := f.kubeconfig(t, "expiry", env.Config, nil)
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), Resolver: goResolver(f.onprem.Addr)})
		s := rep.Step(StepTLS)
		if s.Status != StatusWarn || !strings.Contains(s.Summary, "expires in") || len(s.Fixes) != 1 {
			t.Fatalf("tls %+v", s)
		}
		if rep.Result != StatusWarn || len(rep.Failed()) != 0 {
			t.Errorf("result %s, failed %v", rep.Result, rep.Failed())
		}
	})

	// Field failure 1: the name resolves on Azure DNS but not on the
	// on-prem DNS this machine uses.
	t.Run("field: private FQDN does not resolve on-prem", func(t *testing.T) {
		kc := f.kubeconfig(t, "aks-dns", env.Config, func(c *clientcmdapi.Cluster) {
			c.Server = aksServer
			c.TLSServerName = "localhost" // the only failure is DNS
		})
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), ExpiryWarning: time.Hour,
			Resolver: goResolver(f.onprem.Addr), DNSServers: []string{f.onprem.Addr, f.azure.Addr}})
		if got := rep.Failed(); len(got) != 1 || got[0] != StepName {
			t.Fatalf("failed steps %v, want only name", got)
		}
		name := rep.Step(StepName)
		if !strings.Contains(name.Summary, "does not resolve on the system resolver") || !strings.Contains(name.Summary, "resolves on DNS server "+f.azure.Addr+" to 127.0.0.1") {
			t.Errorf("name summary %q", name.Summary)
		}
		azurePort := strings.TrimPrefix(f.azure.Addr, "127.0.0.2:")
		fixes := strings.Join(name.Fixes, "\n")
		for _, want := range []string{
			`zone "privatelink.westeurope.azmk8s.io" { type forward; forward only; forwarders { 127.0.0.2 port ` + azurePort + `; }; };`,
			`Add-DnsServerConditionalForwarderZone -Name "privatelink.westeurope.azmk8s.io" -MasterServers 127.0.0.2`,
			"--enable-public-fqdn",
			"127.0.0.1 " + f.aksHost,
		} {
			if !strings.Contains(fixes, want) {
				t.Errorf("name fixes lack %q:\n%s", want, fixes)
			}
		}
		if tcp := rep.Step(StepTCP); tcp.Status != StatusOK || !strings.Contains(tcp.Summary, "using the address from DNS server "+f.azure.Addr) {
			t.Errorf("tcp %+v", tcp)
		}
		if rep.Step(StepTLS).Status != StatusOK || rep.Step(StepAPI).Status != StatusOK {
			t.Errorf("tls %+v\napi %+v", rep.Step(StepTLS), rep.Step(StepAPI))
		}
	})

	// Field failure 2: HTTPS_PROXY is set and NO_PROXY does not match, so
	// kubectl asks a proxy that cannot reach the private endpoint.
	t.Run("field: HTTPS_PROXY set, NO_PROXY wrong", func(t *testing.T) {
		proxy := startConnectProxy(t, http.StatusBadGateway, nil)
		t.Setenv("HTTPS_PROXY", proxy.URL.String())
		t.Setenv("https_proxy", "")
		t.Setenv("NO_PROXY", fieldNoProxy)
		t.Setenv("no_proxy", "")
		t.Setenv("REQUEST_METHOD", "")
		kc := f.kubeconfig(t, "aks-proxy", env.Config, func(c *clientcmdapi.Cluster) {
			c.Server = aksServer
			c.TLSServerName = "localhost" // the only failure is the proxy
		})
		opts := Options{Kubeconfig: kc, Resolver: goResolver(f.azure.Addr), ExpiryWarning: time.Hour} // Getenv nil: the process environment
		rep := f.run(t, opts)
		if got := rep.Failed(); len(got) != 1 || got[0] != StepTCP {
			t.Fatalf("failed steps %v, want only tcp", got)
		}
		const entry = ".privatelink.westeurope.azmk8s.io"
		px := rep.Step(StepProxy)
		if px.Status != StatusWarn || !strings.Contains(px.Summary, "through the proxy "+proxy.URL.String()+" (HTTPS_PROXY)") || !strings.Contains(strings.Join(px.Fixes, "\n"), `add "`+entry+`" to NO_PROXY`) {
			t.Errorf("proxy %+v", px)
		}
		tcp := rep.Step(StepTCP)
		if !strings.Contains(tcp.Summary, "could not reach "+f.aksHost+":"+f.port+": CONNECT answered 502 Bad Gateway") {
			t.Errorf("tcp summary %q", tcp.Summary)
		}
		wantFix := `export NO_PROXY="` + fieldNoProxy + "," + entry + `" no_proxy="` + fieldNoProxy + "," + entry + `"`
		if !strings.Contains(strings.Join(tcp.Fixes, "\n"), wantFix) {
			t.Errorf("tcp fixes lack %q:\n%s", wantFix, strings.Join(tcp.Fixes, "\n"))
		}
		if !strings.Contains(strings.Join(tcp.Evidence, "\n"), "bypassing the proxy fixes this") {
			t.Errorf("tcp evidence %q", tcp.Evidence)
		}
		if got := proxy.Targets(); len(got) != 1 || got[0] != f.aksHost+":"+f.port {
			t.Errorf("the proxy was asked for %v", got)
		}
		if rep.Step(StepTLS).Status != StatusOK || rep.Step(StepAPI).Status != StatusOK {
			t.Errorf("tls %+v\napi %+v", rep.Step(StepTLS), rep.Step(StepAPI))
		}

		// Apply the Fix: kubectl goes direct and everything passes.
		t.Setenv("NO_PROXY", fieldNoProxy+","+entry)
		rep = f.run(t, opts)
		if rep.Result != StatusOK || rep.Proxy.Matched != entry {
			t.Errorf("after the fix: result %s, matched %q, failed %v", rep.Result, rep.Proxy.Matched, rep.Failed())
		}
		if got := proxy.Targets(); len(got) != 1 {
			t.Errorf("after the fix the proxy was asked again: %v", got)
		}
	})

	t.Run("a proxy that can reach the server", func(t *testing.T) {
		target := net.JoinHostPort(f.aksHost, f.port)
		proxy := startConnectProxy(t, http.StatusBadGateway, map[string]string{target: "127.0.0.1:" + f.port})
		pu := *proxy.URL
		pu.User = url.UserPassword("alice", "pr0xy-pa55")
		f.secrets = append(f.secrets, "pr0xy-pa55")
		kc := f.kubeconfig(t, "aks-via-proxy", env.Config, func(c *clientcmdapi.Cluster) {
			c.Server = aksServer
			c.TLSServerName = "localhost"
		})
		rep := f.run(t, Options{Kubeconfig: kc, ExpiryWarning: time.Hour, Resolver: goResolver(f.onprem.Addr),
			Getenv: envMap("https_proxy", pu.String())})
		if rep.Step(StepName).Status != StatusWarn || rep.Step(StepProxy).Status != StatusOK || rep.Step(StepTCP).Status != StatusOK || rep.Step(StepTLS).Status != StatusOK || rep.Step(StepAPI).Status != StatusOK {
			t.Fatalf("steps %+v", rep.Steps)
		}
		if rep.Connection.Via != "proxy" || len(proxy.Targets()) < 2 {
			t.Errorf("connection %+v, proxy targets %v (the API step goes through the proxy too)", rep.Connection, proxy.Targets())
		}
		wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pr0xy-pa55"))
		for _, a := range proxy.Auth() {
			if a != wantAuth {
				t.Errorf("Proxy-Authorization %q", a)
			}
		}
	})

	t.Run("proxy-url in the kubeconfig wins", func(t *testing.T) {
		proxy := startConnectProxy(t, http.StatusBadGateway, nil)
		kc := f.kubeconfig(t, "proxy-url", env.Config, func(c *clientcmdapi.Cluster) { c.ProxyURL = proxy.URL.String() })
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap("NO_PROXY", "*"), Resolver: goResolver(f.onprem.Addr)})
		tcp := rep.Step(StepTCP)
		if tcp.Status != StatusFail || len(tcp.Fixes) != 1 || !strings.Contains(tcp.Fixes[0], "kubectl config unset clusters.proxy-url.proxy-url") {
			t.Fatalf("tcp %+v", tcp)
		}
		if rep.Connection.Fallback == nil || !rep.Connection.Fallback.OK || rep.Step(StepAPI).Status != StatusOK {
			t.Errorf("the direct path should be checked: %+v, api %+v", rep.Connection, rep.Step(StepAPI))
		}
	})

	t.Run("wrong CA", func(t *testing.T) {
		other := newTestCA(t, "another-cluster-ca")
		kc := f.kubeconfig(t, "wrong-ca", env.Config, func(c *clientcmdapi.Cluster) { c.CertificateAuthorityData = other.pem })
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), Resolver: goResolver(f.onprem.Addr)})
		s := rep.Step(StepTLS)
		if s.Status != StatusFail || !strings.Contains(s.Summary, `is not signed by the kubeconfig CA "CN=another-cluster-ca"`) || len(s.Fixes) == 0 {
			t.Fatalf("tls %+v", s)
		}
		if rep.Step(StepAPI).Status != StatusSkip {
			t.Errorf("api %+v", rep.Step(StepAPI))
		}
	})

	t.Run("wrong SAN", func(t *testing.T) {
		kc := f.kubeconfig(t, "wrong-san", env.Config, func(c *clientcmdapi.Cluster) { c.Server = aksServer })
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), Resolver: goResolver(f.azure.Addr)})
		s := rep.Step(StepTLS)
		if s.Status != StatusFail || !strings.Contains(s.Summary, "is not valid for "+f.aksHost+" (SANs: localhost, 127.0.0.1)") ||
			!strings.Contains(strings.Join(s.Fixes, "\n"), "--tls-server-name=<SAN>") {
			t.Fatalf("tls %+v", s)
		}
	})

	t.Run("may not list pods in the namespace", func(t *testing.T) {
		alice, err := env.AddUser("alice", "tenant-a")
		if err != nil {
			t.Fatal(err)
		}
		f.secrets = append(f.secrets, strings.Split(string(alice.KeyData), "\n")[1])
		kc := f.kubeconfig(t, "alice", alice, nil)
		rep := f.run(t, Options{Kubeconfig: kc, Namespace: "team-a", Getenv: envMap(), Resolver: goResolver(f.onprem.Addr), ExpiryWarning: time.Hour})
		s := rep.Step(StepAPI)
		if s.Status != StatusFail || rep.API.User != "alice" || !contains(rep.API.Groups, "tenant-a") || *rep.API.CanListPods {
			t.Fatalf("api %+v %+v", s, rep.API)
		}
		if !strings.Contains(strings.Join(s.Fixes, "\n"), "kubectl create rolebinding alice-view --clusterrole=view --user=alice -n team-a") {
			t.Errorf("fixes %q", s.Fixes)
		}
	})

	t.Run("rejected credentials and no secret in any output", func(t *testing.T) {
		const token, password = "tg-s3cret-t0ken-value", "b4sic-s3cret-pa55"
		f.secrets = append(f.secrets, token, password)
		for _, user := range []*clientcmdapi.AuthInfo{{Token: token}, {Username: "admin", Password: password}} {
			path := filepath.Join(f.dir, "rejected-"+user.Username)
			cfg := clientcmdapi.NewConfig()
			cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
			cfg.AuthInfos["u"] = user
			cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
			cfg.CurrentContext = "c"
			if err := clientcmd.WriteToFile(*cfg, path); err != nil {
				t.Fatal(err)
			}
			rep := f.run(t, Options{Kubeconfig: path, Getenv: envMap("HTTPS_PROXY", "http://bob:pr0xy-pa55@127.0.0.1:9"), Resolver: goResolver(f.onprem.Addr), ExpiryWarning: time.Hour})
			want := "rejects the credentials (401" // an unknown token
			if user.Password != "" {
				want = "ignores the credentials (basic): requests run as system:anonymous"
			}
			if s := rep.Step(StepAPI); s.Status != StatusFail || !strings.Contains(s.Summary, want) {
				t.Errorf("api %+v", s)
			}
		}
	})

	t.Run("CA file missing", func(t *testing.T) {
		kc := f.kubeconfig(t, "ca-file", env.Config, func(c *clientcmdapi.Cluster) {
			c.CertificateAuthorityData = nil
			c.CertificateAuthority = filepath.Join(f.dir, "missing-ca.crt")
		})
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), Resolver: goResolver(f.onprem.Addr)})
		if s := rep.Step(StepKubeconfig); s.Status != StatusFail || len(s.Fixes) == 0 {
			t.Fatalf("kubeconfig %+v", s)
		}
		if rep.Step(StepTLS).Status != StatusSkip || rep.Step(StepAPI).Status != StatusSkip {
			t.Errorf("steps %+v", rep.Steps)
		}
	})

	t.Run("public FQDN unknown to every resolver", func(t *testing.T) {
		kc := f.kubeconfig(t, "public-fqdn", env.Config, func(c *clientcmdapi.Cluster) {
			c.Server = "https://" + net.JoinHostPort("tg-gone.hcp.westeurope.azmk8s.io", f.port)
		})
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), Resolver: goResolver(f.onprem.Addr), DNSServers: []string{f.azure.Addr}})
		if s := rep.Step(StepName); s.Status != StatusFail || !strings.Contains(strings.Join(s.Fixes, "\n"), "--enable-public-fqdn") {
			t.Fatalf("name %+v", s)
		}
		if rep.Step(StepTCP).Status != StatusSkip {
			t.Errorf("tcp %+v", rep.Step(StepTCP))
		}
	})

	t.Run("system resolver does not answer", func(t *testing.T) {
		kc := f.kubeconfig(t, "dns-timeout", env.Config, func(c *clientcmdapi.Cluster) { c.Server = aksServer })
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), Resolver: goResolver(silentDNS(t)), Timeout: 500 * time.Millisecond})
		if s := rep.Step(StepName); s.Status != StatusFail || rep.Lookups[0].Outcome != OutcomeTimeout || !strings.Contains(s.Summary, "no answer within 500ms") || !strings.Contains(s.Fixes[0], "do not answer") {
			t.Fatalf("name %+v", s)
		}
	})

	t.Run("resolvers disagree", func(t *testing.T) {
		stale := startDNS(t, "127.0.0.4", map[string][]string{f.aksHost: {"10.224.0.9"}})
		kc := f.kubeconfig(t, "disagree", env.Config, func(c *clientcmdapi.Cluster) {
			c.Server = aksServer
			c.TLSServerName = "localhost"
		})
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), Resolver: goResolver(f.azure.Addr), DNSServers: []string{stale.Addr}, ExpiryWarning: time.Hour})
		if s := rep.Step(StepName); s.Status != StatusWarn || !strings.Contains(strings.Join(s.Evidence, "\n"), "resolvers disagree") {
			t.Fatalf("name %+v", s)
		}
		if rep.Result != StatusWarn {
			t.Errorf("result %s: %v", rep.Result, rep.Failed())
		}
	})

	t.Run("proxy wants authentication", func(t *testing.T) {
		proxy := startConnectProxy(t, http.StatusProxyAuthRequired, nil)
		kc := f.kubeconfig(t, "proxy-407", env.Config, func(c *clientcmdapi.Cluster) {
			c.Server = aksServer
			c.TLSServerName = "localhost"
		})
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap("HTTPS_PROXY", proxy.URL.String()), Resolver: goResolver(f.azure.Addr), ExpiryWarning: time.Hour})
		s := rep.Step(StepTCP)
		if s.Status != StatusFail || !strings.Contains(s.Summary, "wants authentication") || rep.Connection.ProxyStatus != http.StatusProxyAuthRequired {
			t.Fatalf("tcp %+v", s)
		}
	})

	t.Run("SOCKS proxy cannot reach the server", func(t *testing.T) {
		socks := startSOCKS5(t)
		kc := f.kubeconfig(t, "socks", env.Config, func(c *clientcmdapi.Cluster) {
			c.Server = aksServer
			c.TLSServerName = "localhost"
		})
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap("HTTPS_PROXY", "socks5://"+socks), Resolver: goResolver(f.azure.Addr), ExpiryWarning: time.Hour})
		s := rep.Step(StepTCP)
		if s.Status != StatusFail || !strings.Contains(s.Summary, "host unreachable") || !strings.Contains(strings.Join(s.Fixes, "\n"), "NO_PROXY") {
			t.Fatalf("tcp %+v", s)
		}
	})

	t.Run("unparsable HTTPS_PROXY is ignored", func(t *testing.T) {
		kc := f.kubeconfig(t, "bad-proxy", env.Config, func(c *clientcmdapi.Cluster) {
			c.Server = aksServer
			c.TLSServerName = "localhost"
		})
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap("HTTPS_PROXY", "%zz"), Resolver: goResolver(f.azure.Addr), ExpiryWarning: time.Hour})
		if s := rep.Step(StepProxy); s.Status != StatusWarn || rep.Step(StepAPI).Status != StatusOK {
			t.Fatalf("proxy %+v", s)
		}
	})

	// kubectl itself, under mixed-case proxy variables: the doctor's
	// verdict (direct, or which proxy) must be what kubectl did. The server
	// is https://0.0.0.0:<port>: Go proxies it (it is not a loopback
	// address), and a direct connection to it stays on this machine.
	t.Run("kubectl goes where the doctor says", func(t *testing.T) {
		target := net.JoinHostPort("0.0.0.0", f.port)
		routes := map[string]string{target: "127.0.0.1:" + f.port}
		upper := startConnectProxy(t, http.StatusBadGateway, routes)
		lower := startConnectProxy(t, http.StatusBadGateway, routes)
		kc := f.kubeconfig(t, "kubectl-proxy", env.Config, func(c *clientcmdapi.Cluster) {
			c.Server = "https://" + target
			c.TLSServerName = "localhost"
		})
		cases := []struct {
			name string
			env  map[string]string
			want string // "upper", "lower" or "direct"
		}{
			{"both proxies set", map[string]string{"HTTPS_PROXY": upper.URL.String(), "https_proxy": lower.URL.String()}, "upper"},
			{"NO_PROXY misses, no_proxy matches", map[string]string{"HTTPS_PROXY": upper.URL.String(), "NO_PROXY": ".corp.example", "no_proxy": "0.0.0.0"}, "upper"},
			{"NO_PROXY matches, no_proxy misses", map[string]string{"https_proxy": lower.URL.String(), "NO_PROXY": "0.0.0.0", "no_proxy": ".corp.example"}, "direct"},
			{"lower case only", map[string]string{"https_proxy": lower.URL.String(), "no_proxy": ".corp.example"}, "lower"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := map[string]int{"upper": len(upper.Targets()), "lower": len(lower.Targets())}
				cmd := exec.Command(env.Binaries.Kubectl, "--kubeconfig", kc, "get", "--raw", "/readyz", "--request-timeout=30s")
				cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
				for k, v := range tc.env {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
				out, err := cmd.CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "ok" {
					t.Fatalf("kubectl: %v\n%s", err, out)
				}
				did := "direct"
				switch {
				case len(upper.Targets()) > before["upper"]:
					did = "upper"
				case len(lower.Targets()) > before["lower"]:
					did = "lower"
				}
				if did != tc.want {
					t.Fatalf("kubectl went %s, the test expects %s", did, tc.want)
				}

				rep := f.run(t, Options{Kubeconfig: kc, Getenv: func(k string) string { return tc.env[k] }, Resolver: goResolver(f.onprem.Addr)})
				says := "direct"
				switch {
				case !rep.Proxy.UsesProxy():
				case rep.Proxy.ProxyURL().String() == upper.URL.String():
					says = "upper"
				case rep.Proxy.ProxyURL().String() == lower.URL.String():
					says = "lower"
				default:
					says = rep.Proxy.ProxyURL().String()
				}
				if says != did {
					t.Errorf("the doctor says %s, kubectl went %s\n%s", says, did, rep.Step(StepProxy).Text())
				}
				if rep.Result == StatusFail {
					t.Errorf("failed steps %v", rep.Failed())
				}
			})
		}
	})

	t.Run("exec plugin that hangs is stopped with what it started", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("the plugin is a shell script")
		}
		dir := t.TempDir()
		plugin := writeScript(t, dir, "kubelogin", `echo $$ > `+dir+`/plugin.pid
sleep 300 &
echo $! > `+dir+`/child.pid
echo "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD1234 to authenticate." >&2
wait
`)
		kc := f.execKubeconfig(t, "exec-hang", &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1", Command: plugin,
			Args: []string{"get-token", "--login", "devicecode"}, InteractiveMode: clientcmdapi.NeverExecInteractiveMode})
		var stderr bytes.Buffer
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), Resolver: goResolver(f.onprem.Addr), ExpiryWarning: time.Hour,
			Timeout: 2 * time.Second, Stderr: &stderr})
		for _, name := range []string{"plugin.pid", "child.pid"} {
			pid := readPID(t, filepath.Join(dir, name))
			if !processGone(t, pid) {
				t.Errorf("%s (%d) still runs after the doctor returned", name, pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		s := rep.Step(StepAPI)
		if s.Status != StatusFail || !strings.Contains(s.Summary, "kubelogin did not finish within 8s and was stopped") ||
			!strings.Contains(strings.Join(s.Evidence, "\n"), "enter the code ABCD1234") ||
			!strings.Contains(strings.Join(s.Fixes, "\n"), "kubelogin convert-kubeconfig -l azurecli") {
			t.Errorf("api %s", s.Text())
		}
		if !strings.Contains(stderr.String(), "ABCD1234") {
			t.Errorf("the device-code prompt did not reach Options.Stderr: %q", stderr.String())
		}
	})

	t.Run("exec plugin that fails says why and what to run", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("the plugin is a shell script")
		}
		dir := t.TempDir()
		const secret = "spn-s3cret-value-42"
		tests := []struct {
			name, script string
			args         []string
			summary      string
			evidence     string
			fix          string
		}{
			{"kubelogin", "echo \"Error: failed to get token: AzureCLICredential: ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n",
				[]string{"get-token", "--login", "azurecli"},
				"the exec credential plugin kubelogin gave no credentials: the plugin failed with exit code 1",
				"AzureCLICredential: ERROR: Please run 'az login' to setup account.", "az login"},
			{"kubelogin", "echo 'Error: unknown flag: --legacy-mode' >&2\nexit 1\n",
				[]string{"get-token", "--legacy-mode"},
				"exit code 1", "unknown flag: --legacy-mode", "kubelogin convert-kubeconfig -l azurecli"},
			{"get-creds", "echo \"token endpoint refused client secret $1\" >&2\nexit 3\n",
				[]string{secret},
				"the exec credential plugin get-creds gave no credentials: the plugin failed with exit code 3",
				"token endpoint refused client secret xxxxx", "run kubectl get --raw /readyz to see get-creds's own message"},
			{"kubelogin", "", nil, "kubelogin is not installed", "", "az aks install-cli"},
		}
		for i, tt := range tests {
			sub := filepath.Join(dir, strconv.Itoa(i))
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			command := filepath.Join(sub, tt.name)
			if tt.script != "" {
				command = writeScript(t, sub, tt.name, tt.script)
			}
			f.secrets = append(f.secrets, secret)
			kc := f.execKubeconfig(t, "exec-fail-"+strconv.Itoa(i), &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1", Command: command,
				Args: tt.args, InteractiveMode: clientcmdapi.NeverExecInteractiveMode})
			rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), Resolver: goResolver(f.onprem.Addr), ExpiryWarning: time.Hour})
			s := rep.Step(StepAPI)
			if s.Status != StatusFail || !strings.Contains(s.Summary, tt.summary) ||
				!strings.Contains(strings.Join(s.Evidence, "\n"), tt.evidence) || !strings.Contains(strings.Join(s.Fixes, "\n"), tt.fix) {
				t.Errorf("%d: api %s", i, s.Text())
			}
		}
	})

	t.Run("exec plugin that works", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("the plugin is a shell script")
		}
		dir := t.TempDir()
		cred, err := json.Marshal(map[string]any{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
			"status": map[string]string{"clientCertificateData": string(env.Config.CertData), "clientKeyData": string(env.Config.KeyData)}})
		if err != nil {
			t.Fatal(err)
		}
		credFile := filepath.Join(dir, "cred.json")
		if err := os.WriteFile(credFile, cred, 0o600); err != nil {
			t.Fatal(err)
		}
		plugin := writeScript(t, dir, "kubelogin", `printf '%s' "$KUBERNETES_EXEC_INFO" > `+dir+`/info.json
cat `+credFile+"\n")
		kc := f.execKubeconfig(t, "exec-ok", &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1", Command: plugin,
			InteractiveMode: clientcmdapi.NeverExecInteractiveMode, ProvideClusterInfo: true})
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), Resolver: goResolver(f.onprem.Addr), ExpiryWarning: time.Hour})
		if s := rep.Step(StepAPI); s.Status != StatusOK || rep.API.User != "admin" || rep.API.ExecPlugin == nil || !rep.API.ExecPlugin.OK {
			t.Fatalf("api %s %+v", s.Text(), rep.API)
		}
		info, err := os.ReadFile(filepath.Join(dir, "info.json"))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			APIVersion, Kind string
			Spec             struct {
				Interactive bool
				Cluster     struct{ Server string }
			}
		}
		if err := json.Unmarshal(info, &got); err != nil || got.Kind != "ExecCredential" || got.APIVersion != "client.authentication.k8s.io/v1" ||
			got.Spec.Interactive || got.Spec.Cluster.Server != env.Config.Host {
			t.Errorf("KUBERNETES_EXEC_INFO %s (%v)", info, err)
		}
	})

	t.Run("Fix lines for a Windows user", func(t *testing.T) {
		proxy := startConnectProxy(t, http.StatusBadGateway, nil)
		kc := f.kubeconfig(t, "windows", env.Config, func(c *clientcmdapi.Cluster) {
			c.Server = aksServer
			c.TLSServerName = "localhost"
		})
		rep := f.run(t, Options{Kubeconfig: kc, ExpiryWarning: time.Hour, Resolver: goResolver(f.azure.Addr),
			Shell:  Shell{OS: "windows", Name: "powershell"},
			Getenv: envMap("HTTPS_PROXY", proxy.URL.String(), "NO_PROXY", ".corp.example")})
		const value = `".corp.example,.privatelink.westeurope.azmk8s.io"`
		fixes := strings.Join(rep.Step(StepTCP).Fixes, "\n")
		for _, want := range []string{"PowerShell: $env:NO_PROXY=" + value, "setx NO_PROXY " + value} {
			if !strings.Contains(fixes, want) {
				t.Errorf("tcp fixes lack %q:\n%s", want, fixes)
			}
		}
		if strings.Contains(fixes, "export ") || !strings.Contains(strings.Join(rep.Step(StepProxy).Evidence, "\n"), "kubectl ignores the Windows system proxy") {
			t.Errorf("proxy %s\ntcp fixes %s", rep.Step(StepProxy).Text(), fixes)
		}
		if rep.Shell.OS != "windows" {
			t.Errorf("report shell %+v", rep.Shell)
		}
	})

	t.Run("nothing listens on the port", func(t *testing.T) {
		closed := closedPort(t)
		kc := f.kubeconfig(t, "closed", env.Config, func(c *clientcmdapi.Cluster) { c.Server = "https://" + closed.String() })
		rep := f.run(t, Options{Kubeconfig: kc, Getenv: envMap(), Resolver: goResolver(f.onprem.Addr)})
		s := rep.Step(StepTCP)
		if s.Status != StatusFail || !strings.Contains(s.Summary, "connection refused") || len(s.Fixes) != 1 {
			t.Fatalf("tcp %+v", s)
		}
		if rep.Step(StepTLS).Status != StatusSkip || rep.Step(StepAPI).Status != StatusSkip {
			t.Errorf("tls/api not skipped: %+v", rep.Steps)
		}
	})
}

// kubeconfig writes a kubeconfig for cfg, with edit applied to its cluster.
func (f *fixture) kubeconfig(t *testing.T, name string, cfg *rest.Config, edit func(*clientcmdapi.Cluster)) string {
	t.Helper()
	path := filepath.Join(f.dir, name)
	if err := devenv.WriteKubeconfig(path, cfg, name); err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return path
	}
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(kc.Clusters[name])
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// execKubeconfig writes a kubeconfig for the control plane whose user
// gets its credentials from the exec plugin ec.
func (f *fixture) execKubeconfig(t *testing.T, name string, ec *clientcmdapi.ExecConfig) string {
	t.Helper()
	path := f.kubeconfig(t, name, f.env.Config, nil)
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range kc.AuthInfos {
		*u = clientcmdapi.AuthInfo{Exec: ec}
	}
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeScript writes an executable shell script and returns its path.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the plugin did not start: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// processGone waits until pid no longer runs (it is gone, or a zombie
// waiting for init), for a minute at most: a killed process needs a moment
// to exit, and this machine may be busy.
func processGone(t *testing.T, pid int) bool {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// The state follows the command name in parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// run runs the doctor, logs the text report (the examples in
// docs/doctor.md come from these logs) and checks that neither form of the
// report holds a secret.
func (f *fixture) run(t *testing.T, opts Options) *Report {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Steps) != len(rep.Steps) {
		t.Fatalf("JSON does not round-trip: %v", err)
	}
	for _, s := range f.secrets {
		if strings.Contains(text.String(), s) || strings.Contains(js.String(), s) {
			t.Errorf("a secret (%.8s...) is in the report", s)
		}
	}
	t.Logf("tenantguard doctor output:\n%s", text.String())
	return rep
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestRunBadInput: unusable input is an ErrBadInput error, before any
// network traffic.
func TestRunBadInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "config")
	if err := os.WriteFile(good, []byte(kubeconfigDoc("    server: https://"+testAKSName, "    token: x")), 0o600); err != nil {
		t.Fatal(err)
	}
	garbled := filepath.Join(dir, "garbled")
	if err := os.WriteFile(garbled, []byte("clusters: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"missing kubeconfig", Options{Kubeconfig: filepath.Join(dir, "nope")}, "no kubeconfig at"},
		{"garbled kubeconfig", Options{Kubeconfig: garbled}, "read kubeconfig"},
		{"unknown context", Options{Kubeconfig: good, Context: "prod"}, `context "prod" is not in the kubeconfig`},
		{"bad --dns-server", Options{Kubeconfig: good, DNSServers: []string{"dns.corp.example"}}, "--dns-server"},
		{"negative timeout", Options{Kubeconfig: good, Timeout: -time.Second}, "--timeout"},
		{"no KUBECONFIG, no home config", Options{Getenv: envMap("HOME", dir)}, filepath.Join(dir, ".kube", "config")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Getenv == nil {
				tt.opts.Getenv = envMap()
			}
			rep, err := Run(context.Background(), tt.opts)
			if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tt.want) || rep != nil {
				t.Fatalf("Run = %v, %v; want ErrBadInput with %q", rep, err, tt.want)
			}
		})
	}
}
