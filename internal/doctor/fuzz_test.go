package doctor

import (
	"encoding/json"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/http/httpproxy"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The seed corpus of every target is in testdata/fuzz/<target>. Run one
// with, e.g.:
//
//	go test ./internal/doctor -run '^$' -fuzz FuzzParseKubeconfig -fuzztime 1m

// FuzzParseKubeconfig: any bytes and context name give a Target or an input
// error, never a panic; a Target has a usable server; no token or password
// of the kubeconfig ends up in the Target's JSON.
func FuzzParseKubeconfig(f *testing.F) {
	f.Add([]byte(kubeconfigDoc("    server: https://"+testAKSName, "    token: t0ken-value-123")), "")
	f.Add([]byte(kubeconfigDoc("    server: 10.0.0.1:6443\n    proxy-url: socks5://u:p@proxy:1080", "    username: a\n    password: pa55word-123")), "aks")
	f.Add([]byte("clusters: [\n"), "")
	f.Add([]byte(""), "x")
	f.Fuzz(func(t *testing.T, data []byte, context string) {
		tg, err := ParseKubeconfig(data, context)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error %v is not ErrBadInput", err)
			}
			return
		}
		if tg.Host == "" || tg.Port == "" || (tg.Scheme != "https" && tg.Scheme != "http") || tg.URL() == nil {
			t.Fatalf("unusable target %+v", tg)
		}
		_ = ClassifyName(tg.Host)
		js, err := json.Marshal(tg)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.Load(data)
		if err != nil {
			t.Fatalf("parsed by ParseKubeconfig but not by clientcmd.Load: %v", err)
		}
		for _, u := range cfg.AuthInfos {
			for _, secret := range []string{u.Token, u.Password} {
				if len(secret) >= 8 && strings.Contains(string(js), secret) && !inNonSecretField(tg, secret) {
					t.Fatalf("secret %q in the target JSON", secret)
				}
			}
		}
	})
}

// inNonSecretField reports whether s also appears in a field that is shown
// on purpose (a secret equal to the server name is not a leak).
func inNonSecretField(tg *Target, s string) bool {
	shown := strings.Join(append(append([]string{tg.Server, tg.Context, tg.Cluster, tg.User, tg.ProxyURL, tg.TLSServerName, tg.CA.File}, tg.Auth.Details...), tg.Warnings...), "\n")
	return strings.Contains(shown, s)
}

// FuzzParseDNSServer: a --dns-server value is refused or round-trips.
func FuzzParseDNSServer(f *testing.F) {
	for _, s := range []string{"10.0.0.4", "10.0.0.4:5353", "[fd00::4]:53", "fd00::4", "dns.corp.example", "10.0.0.4:0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := ParseDNSServer(s)
		if err != nil {
			return
		}
		if !ap.IsValid() || ap.Port() == 0 || ap.Addr().Zone() != "" {
			t.Fatalf("ParseDNSServer(%q) = %v", s, ap)
		}
		again, err := ParseDNSServer(ap.String())
		if err != nil || again != ap {
			t.Fatalf("%q -> %v does not round-trip: %v %v", s, ap, again, err)
		}
		if _, err := netip.ParseAddrPort(ap.String()); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzNoProxyAgreesWithHTTPProxy: for any NO_PROXY value and URL host,
// MatchNoProxy's explanation gives httpproxy's verdict.
func FuzzNoProxyAgreesWithHTTPProxy(f *testing.F) {
	seeds := [][2]string{
		{".azmk8s.io", testAKSName},
		{"*.azmk8s.io,10.0.0.0/8", "azmk8s.io:443"},
		{"10.1.2.3:6443", "10.1.2.3:6443"},
		{"[fd00::1]:443,fd00::/8", "[fd00::1]"},
		{"*", "localhost"},
		{"EXAMPLE.com.", "api.example.com."},
		{"bücher.example", "xn--bcher-kva.example"},
		{"", "LOCALHOST:6443"},
		{"example.com:", "[::ffff:10.0.0.1]:443"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, noProxy, host string, https bool) {
		u := &url.URL{Scheme: "http", Host: host}
		if https {
			u.Scheme = "https"
		}
		p, err := (&httpproxy.Config{HTTPProxy: testProxy, HTTPSProxy: testProxy, NoProxy: noProxy}).ProxyFunc()(u)
		if err != nil {
			return
		}
		bypass, matched := MatchNoProxy(ParseNoProxy(noProxy), u)
		if (p != nil) != (bypass == BypassNone) {
			t.Fatalf("NO_PROXY %q, host %q: httpproxy proxied=%v, explanation %q %+v", noProxy, host, p != nil, bypass, matched)
		}
		if (bypass == BypassEntry) != (matched != nil) {
			t.Fatalf("bypass %q with matched entry %+v", bypass, matched)
		}
	})
}

// FuzzClassifyName: any host is classified; AKS kinds carry their zone.
func FuzzClassifyName(f *testing.F) {
	for _, s := range []string{testAKSName, testAKSPublic, "X.PRIVATELINK.EASTUS.AZMK8S.IO.", "10.0.0.1", "azmk8s.io", ".privatelink..azmk8s.io"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		n := ClassifyName(host)
		if n.Kind == NameAKSPrivate || n.Kind == NameAKSPublic {
			if n.Region == "" || n.PrivateZone != "privatelink."+n.Region+".azmk8s.io" || !strings.Contains(strings.ToLower(host), n.Region) {
				t.Fatalf("ClassifyName(%q) = %+v", host, n)
			}
		}
		_ = n.Describe()
	})
}

// FuzzDecideProxy: any proxy environment and server URL give a decision;
// every suggested NO_PROXY entry really makes Go bypass the proxy.
func FuzzDecideProxy(f *testing.F) {
	f.Add("http://proxy.corp.example:3128", ".corp.example,10.0.0.0/8", "https://"+testAKSName)
	f.Add("proxy:3128", "", "https://10.1.2.3:6443")
	f.Add("socks5://u:p@proxy:1080", "*", "https://"+testAKSPublic+".")
	f.Add("%zz", "localhost", "http://api.example.com")
	f.Fuzz(func(t *testing.T, httpsProxy, noProxy, server string) {
		u, err := url.Parse(server)
		if err != nil || u.Host == "" {
			return
		}
		env := ProxyEnvFrom(envMap("HTTPS_PROXY", httpsProxy, "HTTP_PROXY", httpsProxy, "NO_PROXY", noProxy))
		d := DecideProxy(ProxyInput{URL: u, Env: env, Name: ClassifyName(u.Hostname())})
		for _, s := range d.Suggest {
			cfg := env.Config()
			cfg.NoProxy = joinNoProxy(noProxy, s)
			if p, err := cfg.ProxyFunc()(u); err != nil || p != nil {
				t.Fatalf("suggestion %q does not bypass the proxy for %s", s, server)
			}
		}
		_ = proxyStep(&d, ClassifyName(u.Hostname()), true, Shell{OS: "linux", Name: "bash"}, "c")
	})
}

// FuzzExecPluginStderr: whatever an exec plugin writes to stderr, the
// report keeps at most maxStderrLines trimmed lines, and a secret passed to
// the plugin as an argument or in its environment never survives.
func FuzzExecPluginStderr(f *testing.F) {
	f.Add([]byte("Error: failed to get token: Please run 'az login' to setup account.\n"), "s3cret-client-value")
	f.Add([]byte("line\r\n\n\n  x  \nclient secret s3cret-client-value rejected"), "s3cret-client-value")
	f.Add([]byte{0xff, 0xfe, '\n', 0}, "12345678")
	f.Add([]byte("xxxxxxxxxxxxxxxx"), "xxxxxxxx")
	f.Fuzz(func(t *testing.T, stderr []byte, secret string) {
		if len(secret) < 8 || strings.ContainsAny(secret, "\n\r\t ") {
			return
		}
		ec := &clientcmdapi.ExecConfig{Args: []string{"--client-secret=" + secret}, Env: []clientcmdapi.ExecEnvVar{{Name: "AAD_SERVICE_PRINCIPAL_CLIENT_SECRET", Value: secret}}}
		tail := &tailBuffer{max: 16 << 10}
		_, _ = tail.Write(stderr)
		lines := redactLines(tail.lines(maxStderrLines), ec)
		if len(lines) > maxStderrLines {
			t.Fatalf("%d lines kept", len(lines))
		}
		for _, l := range lines {
			if l == "" || strings.Contains(l, "\n") || strings.Contains(l, secret) {
				t.Fatalf("line %q (secret %q)", l, secret)
			}
		}
	})
}
