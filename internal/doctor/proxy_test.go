package doctor

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/net/http/httpproxy"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

const testProxy = "http://proxy.corp.example:3128"

// goVerdict is httpproxy's own answer: does Go use the proxy for rawURL?
func goVerdict(t testing.TB, noProxy, rawURL string) bool {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %q: %v", rawURL, err)
	}
	p, err := (&httpproxy.Config{HTTPProxy: testProxy, HTTPSProxy: testProxy, NoProxy: noProxy}).ProxyFunc()(u)
	if err != nil {
		t.Fatalf("httpproxy(%q, %q): %v", noProxy, rawURL, err)
	}
	return p != nil
}

// TestMatchNoProxyAgreesWithHTTPProxy checks, row by row, that the rule
// MatchNoProxy names is the one that decides, and that its verdict is
// httpproxy's.
func TestMatchNoProxyAgreesWithHTTPProxy(t *testing.T) {
	const aks = "https://tg-abc.0f1e2d3c.privatelink.westeurope.azmk8s.io"
	tests := []struct {
		name    string
		noProxy string
		url     string
		bypass  Bypass
		matched string // entry that matched, for BypassEntry
	}{
		{"empty NO_PROXY", "", aks, BypassNone, ""},
		{"leading dot matches subdomain", ".azmk8s.io", aks, BypassEntry, ".azmk8s.io"},
		{"region private zone", ".privatelink.westeurope.azmk8s.io", aks, BypassEntry, ".privatelink.westeurope.azmk8s.io"},
		{"other region does not match", ".privatelink.northeurope.azmk8s.io", aks, BypassNone, ""},
		{"leading dot does not match the bare name", ".azmk8s.io", "https://azmk8s.io", BypassNone, ""},
		{"bare domain matches the name", "azmk8s.io", "https://azmk8s.io", BypassEntry, "azmk8s.io"},
		{"bare domain matches subdomains", "azmk8s.io", aks, BypassEntry, "azmk8s.io"},
		{"suffix only at a label boundary", "foo.com", "https://barfoo.com", BypassNone, ""},
		{"star-dot is subdomains only", "*.azmk8s.io", "https://azmk8s.io", BypassNone, ""},
		{"star-dot matches subdomain", "*.azmk8s.io", aks, BypassEntry, "*.azmk8s.io"},
		{"star alone", "*", aks, BypassEntry, "*"},
		{"star after other entries", "corp.example,*", aks, BypassEntry, "*"},
		{"star matches IPs", "*", "https://10.1.2.3", BypassEntry, "*"},
		{"CIDR does not match a name", "10.0.0.0/8", aks, BypassNone, ""},
		{"CIDR matches an IP URL", "10.0.0.0/8", "https://10.1.2.3", BypassEntry, "10.0.0.0/8"},
		{"CIDR with host bits", "10.9.9.9/8", "https://10.1.2.3:6443", BypassEntry, "10.9.9.9/8"},
		{"IP entry", "10.1.2.3", "https://10.1.2.3", BypassEntry, "10.1.2.3"},
		{"IP entry other IP", "10.1.2.3", "https://10.1.2.4", BypassNone, ""},
		{"IP with port, default port differs", "10.1.2.3:6443", "https://10.1.2.3", BypassNone, ""},
		{"IP with port, same port", "10.1.2.3:6443", "https://10.1.2.3:6443", BypassEntry, "10.1.2.3:6443"},
		{"domain with port 443 matches default https port", "example.com:443", "https://api.example.com", BypassEntry, "example.com:443"},
		{"domain with port, other port", "example.com:443", "https://api.example.com:6443", BypassNone, ""},
		{"domain never matches an IP URL", "example.com", "https://10.1.2.3", BypassNone, ""},
		{"upper-case entry and host", "EXAMPLE.COM", "https://Api.Example.COM", BypassEntry, "example.com"},
		{"trailing dot in the URL defeats the entry", ".example.com", "https://api.example.com.", BypassNone, ""},
		{"trailing dot in both", ".example.com.", "https://api.example.com.", BypassEntry, ".example.com."},
		{"spaces and empty entries", " , .example.com ,,", "https://api.example.com", BypassEntry, ".example.com"},
		{"IPv6 CIDR", "fd00::/8", "https://[fd00::1]:443", BypassEntry, "fd00::/8"},
		{"IPv6 entry without brackets", "fd00::1", "https://[fd00::1]", BypassEntry, "fd00::1"},
		{"IPv6 entry with brackets and port", "[fd00::1]:443", "https://[fd00::1]", BypassEntry, "[fd00::1]:443"},
		{"IPv6 in brackets without port is a (useless) domain", "[fd00::1]", "https://[fd00::1]", BypassNone, ""},
		{"localhost is never proxied", "", "https://localhost:6443", BypassLoopback, ""},
		{"loopback IPv4 is never proxied", "", "https://127.0.0.1:6443", BypassLoopback, ""},
		{"loopback IPv6 is never proxied", "", "https://[::1]:6443", BypassLoopback, ""},
		{"127/8 is loopback", "", "https://127.0.0.53", BypassLoopback, ""},
		{"LOCALHOST in capitals is not special", "", "https://LOCALHOST:6443", BypassNone, ""},
		{"LOCALHOST in capitals matched by an entry", "localhost", "https://LOCALHOST:6443", BypassEntry, "localhost"},
		{"IP entries are checked before domains", "example.com,10.1.2.3", "https://10.1.2.3", BypassEntry, "10.1.2.3"},
		{"first matching domain wins", "azmk8s.io,.privatelink.westeurope.azmk8s.io", aks, BypassEntry, "azmk8s.io"},
		{"unicode entry matches punycode host", "bücher.example", "https://xn--bcher-kva.example", BypassEntry, "bücher.example"},
		{"http URL uses HTTP_PROXY", "", "http://api.example.com", BypassNone, ""},
		{"entry with empty port matches any port", "example.com:", "https://api.example.com:6443", BypassEntry, "example.com:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			bypass, matched := MatchNoProxy(ParseNoProxy(tt.noProxy), u)
			proxied := goVerdict(t, tt.noProxy, tt.url)
			if proxied != (bypass == BypassNone) {
				t.Fatalf("explanation %q disagrees with httpproxy (proxied=%v)", bypass, proxied)
			}
			if bypass != tt.bypass {
				t.Errorf("bypass = %q, want %q", bypass, tt.bypass)
			}
			got := ""
			if matched != nil {
				got = matched.Entry
			}
			if got != strings.ToLower(strings.TrimSpace(tt.matched)) {
				t.Errorf("matched %q, want %q", got, tt.matched)
			}
		})
	}
}

func TestParseNoProxy(t *testing.T) {
	got := ParseNoProxy(" .Example.com, *.corp.example ,10.0.0.0/8,10.1.2.3:6443,[fd00::1]:443,example.org:8443,, :80,*,after")
	want := []struct {
		entry  string
		kind   EntryKind
		suffix string
		exact  bool
		port   string
	}{
		{".example.com", EntryDomain, ".example.com", false, ""},
		{"*.corp.example", EntryDomain, ".corp.example", false, ""},
		{"10.0.0.0/8", EntryCIDR, "", false, ""},
		{"10.1.2.3:6443", EntryIP, "", false, "6443"},
		{"[fd00::1]:443", EntryIP, "", false, "443"},
		{"example.org:8443", EntryDomain, ".example.org", true, "8443"},
		{":80", EntryIgnored, "", false, ""},
		{"*", EntryAll, "", false, ""},
		{"after", EntryIgnored, "", false, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Entry != w.entry || g.Kind != w.kind || g.Suffix != w.suffix || g.AlsoExact != w.exact || g.Port != w.port {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
		if g.Describe() == "" {
			t.Errorf("entry %d has no description", i)
		}
	}
}

func TestProxyEnvFrom(t *testing.T) {
	e := ProxyEnvFrom(envMap(
		"HTTPS_PROXY", "http://upper:3128", "https_proxy", "http://lower:3128",
		"NO_PROXY", "10.0.0.0/8", "no_proxy", ".corp.example",
		"http_proxy", "http://only-lower:3128",
		"ALL_PROXY", "socks5://all:1080",
	))
	if e.HTTPSProxy != "http://upper:3128" || e.HTTPSProxyVar != "HTTPS_PROXY" {
		t.Errorf("https proxy = %q from %s, want HTTPS_PROXY first, as net/http reads it", e.HTTPSProxy, e.HTTPSProxyVar)
	}
	if e.HTTPProxy != "http://only-lower:3128" || e.HTTPProxyVar != "http_proxy" {
		t.Errorf("http proxy = %q from %s", e.HTTPProxy, e.HTTPProxyVar)
	}
	if e.NoProxy != "10.0.0.0/8" || e.NoProxyVar != "NO_PROXY" {
		t.Errorf("no proxy = %q from %s, want NO_PROXY first", e.NoProxy, e.NoProxyVar)
	}
	if e.KubeNoProxy != "10.0.0.0/8" || e.KubeNoProxyVar != "NO_PROXY" {
		t.Errorf("kubectl CIDR rule reads %q from %s, want NO_PROXY first", e.KubeNoProxy, e.KubeNoProxyVar)
	}
	if len(e.Conflicts) != 2 || e.AllProxy == "" {
		t.Fatalf("conflicts = %v, all proxy %q", e.Conflicts, e.AllProxy)
	}
	want := "HTTPS_PROXY=http://upper:3128 and https_proxy=http://lower:3128 differ: kubectl and other Go programs use HTTPS_PROXY; curl and Python use https_proxy"
	if got := e.Conflicts[0].String(); got != want {
		t.Errorf("conflict %q, want %q", got, want)
	}
	e = ProxyEnvFrom(envMap("HTTPS_PROXY", "http://u:pa55w0rd@upper:3128", "https_proxy", "http://lower:3128"))
	if strings.Contains(e.Conflicts[0].String(), "pa55w0rd") {
		t.Errorf("a proxy password is in %q", e.Conflicts[0])
	}
}

// Values for the differential tests: two proxies that can be told apart
// and NO_PROXY values that do and do not match the URLs below.
const (
	upperProxy     = "http://upper.proxy.example:3128"
	lowerProxy     = "http://lower.proxy.example:3128"
	upperHTTPProxy = "http://upper-http.proxy.example:3128"
	lowerHTTPProxy = "http://lower-http.proxy.example:3128"
	noMatch        = ".corp.example"
	match          = ".privatelink.westeurope.azmk8s.io,10.0.0.0/8,api.example.com"
)

var differentialURLs = []string{
	"https://" + testAKSName,
	"https://" + testAKSPublic,
	"https://10.1.2.3:6443",
	"http://api.example.com",
	"http://10.1.2.3",
}

// kubectlProxier asks kubectl's own proxy function, in a child process
// with exactly env as its environment, which proxy it uses for each URL:
// the proxy URL, or "direct". The child is needed because
// net/http.ProxyFromEnvironment reads the environment once per process.
// kubectl's function is apimachinery's NewProxierWithNoProxyCIDR around
// net/http.ProxyFromEnvironment (client-go's transport default).
func kubectlProxier(t *testing.T, env map[string]string, urls []string) map[string]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperKubectlProxier$", "-test.count=1")
	cmd.Env = []string{helperEnv + "=1", helperURLsEnv + "=" + strings.Join(urls, " ")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "proxier: "); ok {
			u, p, _ := strings.Cut(rest, " -> ")
			got[u] = p
		}
	}
	if len(got) != len(urls) {
		t.Fatalf("helper answered for %d of %d URLs:\n%s", len(got), len(urls), out)
	}
	return got
}

const (
	helperEnv     = "TENANTGUARD_DOCTOR_PROXIER_HELPER"
	helperURLsEnv = "TENANTGUARD_DOCTOR_PROXIER_URLS"
)

// TestHelperKubectlProxier is not a test: kubectlProxier runs it in a
// child process.
func TestHelperKubectlProxier(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("run by kubectlProxier in a child process")
	}
	proxier := utilnet.NewProxierWithNoProxyCIDR(http.ProxyFromEnvironment)
	for _, raw := range strings.Fields(os.Getenv(helperURLsEnv)) {
		req, err := http.NewRequest(http.MethodGet, raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		answer := "direct"
		if p, err := proxier(req); err != nil {
			answer = "error " + err.Error()
		} else if p != nil {
			answer = p.String()
		}
		fmt.Printf("proxier: %s -> %s\n", raw, answer)
	}
}

// doctorProxy is the doctor's answer in kubectlProxier's terms.
func doctorProxy(t *testing.T, env map[string]string, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	d := DecideProxy(ProxyInput{URL: u, Env: ProxyEnvFrom(func(k string) string { return env[k] }), Name: ClassifyName(u.Hostname())})
	switch {
	case d.Error != "":
		return "error " + d.Error
	case d.UsesProxy():
		return d.ProxyURL().String()
	}
	return "direct"
}

// TestProxyDecisionAgreesWithKubectlProxier sets every mix of upper- and
// lower-case proxy variables and compares the doctor's decision with the
// one kubectl's own proxy function makes in the same environment.
func TestProxyDecisionAgreesWithKubectlProxier(t *testing.T) {
	type pair struct{ upper, lower string }
	proxies := []pair{{"", ""}, {upperProxy, ""}, {"", lowerProxy}, {upperProxy, lowerProxy}}
	noProxies := []string{"", noMatch, match}
	var envs []map[string]string
	for i, p := range proxies {
		for _, nu := range noProxies {
			for _, nl := range noProxies {
				env := map[string]string{}
				set := func(k, v string) {
					if v != "" {
						env[k] = v
					}
				}
				set("HTTPS_PROXY", p.upper)
				set("https_proxy", p.lower)
				// The http:// proxies follow the same pattern, shifted, so
				// that every mix of the two pairs occurs.
				hp := proxies[(i+1)%len(proxies)]
				if hp.upper != "" {
					set("HTTP_PROXY", upperHTTPProxy)
				}
				if hp.lower != "" {
					set("http_proxy", lowerHTTPProxy)
				}
				set("NO_PROXY", nu)
				set("no_proxy", nl)
				envs = append(envs, env)
			}
		}
	}
	// kubectl's CIDR rule reads NO_PROXY more leniently than Go does.
	envs = append(envs,
		map[string]string{"HTTPS_PROXY": upperProxy, "NO_PROXY": "010.0.0.0/8", "no_proxy": noMatch},
		map[string]string{"https_proxy": lowerProxy, "no_proxy": " 10.0.0.0/8"},
		map[string]string{"HTTPS_PROXY": upperProxy, "NO_PROXY": noMatch, "no_proxy": "10.0.0.0/8"},
	)
	for _, env := range envs {
		want := kubectlProxier(t, env, differentialURLs)
		for _, raw := range differentialURLs {
			if got := doctorProxy(t, env, raw); got != want[raw] {
				t.Errorf("environment %v, %s: doctor says %s, kubectl's proxy function %s", env, raw, got, want[raw])
			}
		}
	}
}

func TestDecideProxy(t *testing.T) {
	const aks = "tg-abc.0f1e2d3c.privatelink.westeurope.azmk8s.io"
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name        string
		url         string
		clusterURL  string
		env         func(string) string
		wantSource  string
		wantProxy   string
		wantSuggest []string
		wantNote    string
	}{
		{
			name: "no proxy configured", url: "https://" + aks, env: envMap(),
			wantSource: "none",
		},
		{
			name: "private FQDN through the proxy", url: "https://" + aks,
			env:        envMap("HTTPS_PROXY", testProxy, "NO_PROXY", ".corp.example,10.0.0.0/8"),
			wantSource: "environment", wantProxy: testProxy,
			wantSuggest: []string{".privatelink.westeurope.azmk8s.io", aks, ".azmk8s.io"},
			wantNote:    "never resolves",
		},
		{
			name: "public FQDN: the host itself first", url: "https://tg-abc.hcp.westeurope.azmk8s.io:443",
			env:        envMap("https_proxy", testProxy),
			wantSource: "environment", wantProxy: testProxy,
			wantSuggest: []string{"tg-abc.hcp.westeurope.azmk8s.io", ".hcp.westeurope.azmk8s.io"},
		},
		{
			name: "IP server", url: "https://10.1.2.3:6443",
			env:        envMap("HTTPS_PROXY", testProxy),
			wantSource: "environment", wantProxy: testProxy,
			wantSuggest: []string{"10.1.2.3"},
		},
		{
			name: "trailing dot needs a dotted entry", url: "https://" + aks + ".",
			env:        envMap("HTTPS_PROXY", testProxy, "NO_PROXY", ".privatelink.westeurope.azmk8s.io"),
			wantSource: "environment", wantProxy: testProxy,
			wantSuggest: []string{".privatelink.westeurope.azmk8s.io.", aks + ".", ".azmk8s.io."},
			wantNote:    "ends with a dot",
		},
		{
			name: "matched entry", url: "https://" + aks,
			env:        envMap("HTTPS_PROXY", testProxy, "no_proxy", "*.azmk8s.io"),
			wantSource: "environment",
			wantNote:   "curl has no such pattern",
		},
		{
			name: "unparsable proxy is ignored", url: "https://" + aks, env: envMap("HTTPS_PROXY", "%zz"),
			wantSource: "environment",
		},
		{
			name: "loopback bypasses even without NO_PROXY", url: "https://127.0.0.1:6443",
			env:        envMap("HTTPS_PROXY", testProxy),
			wantSource: "environment",
			wantNote:   "never sends localhost",
		},
		{
			name: "proxy-url wins, loopback included", url: "https://127.0.0.1:6443", clusterURL: "http://user:secret@127.0.0.1:3128",
			env:        envMap("HTTPS_PROXY", testProxy, "NO_PROXY", "*"),
			wantSource: "proxy-url", wantProxy: "http://user:xxxxx@127.0.0.1:3128",
			wantNote: "ignores HTTPS_PROXY",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := mustURL(tt.url)
			in := ProxyInput{URL: u, Env: ProxyEnvFrom(tt.env), Name: ClassifyName(u.Hostname())}
			if tt.clusterURL != "" {
				in.ClusterProxyURL = mustURL(tt.clusterURL)
			}
			d := DecideProxy(in)
			if d.Source != tt.wantSource || d.Proxy != tt.wantProxy {
				t.Errorf("source %q proxy %q, want %q %q", d.Source, d.Proxy, tt.wantSource, tt.wantProxy)
			}
			if strings.Join(d.Suggest, " ") != strings.Join(tt.wantSuggest, " ") {
				t.Errorf("suggest %q, want %q", d.Suggest, tt.wantSuggest)
			}
			for _, s := range d.Suggest {
				if goVerdict(t, joinNoProxy(in.Env.NoProxy, s), tt.url) {
					t.Errorf("suggestion %q does not make Go bypass the proxy", s)
				}
			}
			if tt.wantNote != "" && !strings.Contains(strings.Join(d.Notes, "\n"), tt.wantNote) {
				t.Errorf("notes %q do not mention %q", d.Notes, tt.wantNote)
			}
		})
	}
}
