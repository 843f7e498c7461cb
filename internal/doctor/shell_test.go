package doctor

import (
	"net/url"
	"os/exec"
	"strings"
	"testing"
)

func TestDetectShell(t *testing.T) {
	tests := []struct {
		goos, shell string
		want        Shell
	}{
		{"linux", "/bin/bash", Shell{"linux", "bash"}},
		{"linux", "", Shell{"linux", "sh"}},
		{"darwin", "/bin/zsh", Shell{"darwin", "zsh"}},
		{"linux", "/usr/bin/fish", Shell{"linux", "fish"}},
		{"windows", "/usr/bin/bash", Shell{"windows", "powershell"}},
	}
	for _, tt := range tests {
		if got := DetectShell(tt.goos, envMap("SHELL", tt.shell)); got != tt.want {
			t.Errorf("DetectShell(%s, SHELL=%q) = %+v, want %+v", tt.goos, tt.shell, got, tt.want)
		}
	}
}

// TestNoProxyFixPerShell: the NO_PROXY Fix is written for the user's
// shell, says how to make it permanent, and names the right precedence.
func TestNoProxyFixPerShell(t *testing.T) {
	const entry = ".privatelink.westeurope.azmk8s.io"
	d := &ProxyDecision{NoProxy: ".corp.example,10.0.0.0/8"}
	v := ".corp.example,10.0.0.0/8," + entry
	tests := []struct {
		shell Shell
		want  []string
		not   []string
	}{
		{Shell{"linux", "bash"}, []string{
			`add "` + entry + `" to NO_PROXY (kubectl reads NO_PROXY first, curl and Python no_proxy: set both the same):`,
			`export NO_PROXY="` + v + `" no_proxy="` + v + `"`,
			"to keep it, add that line to ~/.bashrc",
		}, []string{"$env:", "setx"}},
		{Shell{"linux", "sh"}, []string{`export NO_PROXY="` + v + `"`, "~/.profile"}, nil},
		{Shell{"darwin", "zsh"}, []string{`export NO_PROXY="` + v + `" no_proxy="` + v + `"`, "~/.zshrc"}, nil},
		{Shell{"darwin", "bash"}, []string{"~/.bash_profile"}, nil},
		{Shell{"linux", "fish"}, []string{
			`set -gx NO_PROXY "` + v + `"; set -gx no_proxy "` + v + `"`,
			`to keep it: set -Ux NO_PROXY "` + v + `"; set -Ux no_proxy "` + v + `"`,
		}, []string{"export"}},
		{Shell{"windows", "powershell"}, []string{
			"on Windows NO_PROXY and no_proxy are one variable",
			`PowerShell: $env:NO_PROXY="` + v + `"` + "\n",
			`to keep it in new windows: setx NO_PROXY "` + v + `"`,
		}, []string{"export", "no_proxy=", "$env:no_proxy", "reads NO_PROXY first"}},
	}
	for _, tt := range tests {
		t.Run(tt.shell.OS+"/"+tt.shell.Name, func(t *testing.T) {
			got := noProxyFix(tt.shell, d, entry)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("fix lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("fix has %q:\n%s", n, got)
				}
			}
		})
	}
}

func TestShellQuoting(t *testing.T) {
	odd := `a'b $HOME "c"`
	if got := (Shell{"linux", "bash"}).setEnv(envVar{name: "NO_PROXY", value: odd})[0]; got != `export NO_PROXY='a'\''b $HOME "c"'` {
		t.Errorf("bash: %s", got)
	}
	if got := (Shell{"windows", "powershell"}).setEnv(envVar{name: "NO_PROXY", value: odd})[0]; got != `PowerShell: $env:NO_PROXY='a''b $HOME "c"'` {
		t.Errorf("PowerShell: %s", got)
	}
}

// TestCaseConflictWarns: variables set in both cases with different values
// make the proxy step warn, say who reads which, and give a Fix that copies
// the value kubectl uses without printing it.
func TestCaseConflictWarns(t *testing.T) {
	env := ProxyEnvFrom(envMap("HTTPS_PROXY", "http://u:s3cret@proxy.corp.example:3128", "NO_PROXY", ".corp.example", "no_proxy", ".privatelink.westeurope.azmk8s.io"))
	u, _ := url.Parse("https://" + testAKSName)
	d := DecideProxy(ProxyInput{URL: u, Env: env, Name: ClassifyName(u.Hostname())})
	s := proxyStep(&d, ClassifyName(u.Hostname()), true, Shell{"linux", "bash"}, "c")
	addCaseConflicts(&s, env, Shell{"linux", "bash"})
	text := s.Text()
	for _, want := range []string{
		"warning: NO_PROXY=.corp.example and no_proxy=.privatelink.westeurope.azmk8s.io differ: kubectl and other Go programs use NO_PROXY; curl and Python use no_proxy",
		`export no_proxy="$NO_PROXY"`,
		"through the proxy http://u:xxxxx@proxy.corp.example:3128 (HTTPS_PROXY)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("proxy step lacks %q:\n%s", want, text)
		}
	}
	if s.Status != StatusWarn || strings.Contains(text, "s3cret") {
		t.Errorf("status %s, or a password is shown:\n%s", s.Status, text)
	}

	// Without a conflict, a direct decision stays OK.
	env = ProxyEnvFrom(envMap("HTTPS_PROXY", "http://proxy.corp.example:3128", "NO_PROXY", ".privatelink.westeurope.azmk8s.io", "no_proxy", ".privatelink.westeurope.azmk8s.io"))
	d = DecideProxy(ProxyInput{URL: u, Env: env, Name: ClassifyName(u.Hostname())})
	s = proxyStep(&d, ClassifyName(u.Hostname()), true, Shell{"linux", "bash"}, "c")
	addCaseConflicts(&s, env, Shell{"linux", "bash"})
	if s.Status != StatusOK {
		t.Errorf("no conflict: %s\n%s", s.Status, s.Text())
	}
}

// TestProxyURLJudgedLikeHTTPSProxy: a private endpoint sent to a proxy is a
// warning whether the proxy comes from HTTPS_PROXY or from proxy-url.
func TestProxyURLJudgedLikeHTTPSProxy(t *testing.T) {
	proxy, _ := url.Parse("http://proxy.corp.example:3128")
	sh := Shell{"linux", "bash"}
	for _, host := range []string{testAKSName, "10.1.2.3", "api.internal.example"} {
		u, _ := url.Parse("https://" + host)
		name := ClassifyName(host)
		const private = true // each resolves to a private address
		viaEnv := DecideProxy(ProxyInput{URL: u, Env: ProxyEnvFrom(envMap("HTTPS_PROXY", proxy.String())), Name: name})
		viaURL := DecideProxy(ProxyInput{URL: u, ClusterProxyURL: proxy, Env: ProxyEnvFrom(envMap()), Name: name})
		e := proxyStep(&viaEnv, name, private, sh, "aks")
		k := proxyStep(&viaURL, name, private, sh, "aks")
		if e.Status != StatusWarn || k.Status != e.Status {
			t.Errorf("%s: HTTPS_PROXY gives %s, proxy-url gives %s; want WARN for both\n%s%s", host, e.Status, k.Status, e.Text(), k.Text())
		}
		if !strings.Contains(strings.Join(k.Fixes, "\n"), "kubectl config unset clusters.aks.proxy-url") {
			t.Errorf("%s: proxy-url fix %q", host, k.Fixes)
		}
	}
	// A public endpoint through either proxy is fine.
	u, _ := url.Parse("https://" + testAKSPublic)
	d := DecideProxy(ProxyInput{URL: u, ClusterProxyURL: proxy, Env: ProxyEnvFrom(envMap()), Name: ClassifyName(testAKSPublic)})
	if s := proxyStep(&d, ClassifyName(testAKSPublic), false, sh, "aks"); s.Status != StatusOK {
		t.Errorf("public endpoint through proxy-url: %s", s.Status)
	}
}

// TestSystemProxyNote: on Windows and macOS the proxy step says that
// kubectl ignores the system proxy settings.
func TestSystemProxyNote(t *testing.T) {
	u, _ := url.Parse("https://" + testAKSName)
	for _, tt := range []struct {
		shell Shell
		want  string
	}{
		{Shell{"windows", "powershell"}, "kubectl ignores the Windows system proxy (Internet Options / WinINET, netsh winhttp, PAC files)"},
		{Shell{"darwin", "zsh"}, "kubectl ignores the macOS system proxy"},
		{Shell{"linux", "bash"}, ""},
	} {
		d := DecideProxy(ProxyInput{URL: u, Env: ProxyEnvFrom(envMap()), Name: ClassifyName(testAKSName)})
		text := proxyStep(&d, ClassifyName(testAKSName), true, tt.shell, "c").Text()
		if tt.want == "" && strings.Contains(text, "system proxy") || !strings.Contains(text, tt.want) {
			t.Errorf("%s:\n%s", tt.shell.OS, text)
		}
	}
}

// TestShQuoteThroughSh: a real POSIX shell reads every quoted value back
// unchanged, and the export line sets both variables to it.
func TestShQuoteThroughSh(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this machine")
	}
	for _, v := range []string{".corp.example,10.0.0.0/8", "*", `a'b`, `$HOME`, "`id`", `"q"`, `back\slash`, "two words", "[x]*.example", "~user", "*.azmk8s.io:443"} {
		line := (Shell{"linux", "bash"}).setEnv(envVar{name: "NO_PROXY", value: v}, envVar{name: "no_proxy", value: v})[0]
		out, err := exec.Command(sh, "-c", line+`; printf '%s|%s' "$NO_PROXY" "$no_proxy"`).Output()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if string(out) != v+"|"+v {
			t.Errorf("%s sets %q, want %q for both", line, out, v)
		}
	}
}
