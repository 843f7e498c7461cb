package doctor

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpproxy"
	"golang.org/x/net/idna"
	netutils "k8s.io/utils/net"
)

// ProxyEnv is the proxy configuration kubectl reads from its environment.
//
// kubectl takes its proxy from net/http.ProxyFromEnvironment, which reads
// HTTPS_PROXY before https_proxy, HTTP_PROXY before http_proxy and NO_PROXY
// before no_proxy; an empty variable counts as unset. (net/http carries its
// own copy of golang.org/x/net/http/httpproxy; recent x/net releases of
// httpproxy.FromEnvironment read lower case first, so the doctor never calls
// FromEnvironment.) kubectl wraps that function with apimachinery's
// NewProxierWithNoProxyCIDR, which also reads NO_PROXY before no_proxy and,
// for URLs whose host is an IP address, bypasses the proxy when a CIDR entry
// contains it. curl and Python read the lower-case names first.
type ProxyEnv struct {
	HTTPSProxy, HTTPSProxyVar string // value, and the variable it came from
	HTTPProxy, HTTPProxyVar   string
	NoProxy, NoProxyVar       string
	// KubeNoProxy is the value apimachinery's CIDR rule reads.
	KubeNoProxy, KubeNoProxyVar string
	// CGI is set when REQUEST_METHOD is: Go then refuses HTTP_PROXY for
	// http:// URLs.
	CGI bool
	// AllProxy is ALL_PROXY (or all_proxy): curl uses it, Go does not.
	AllProxy string
	// Conflicts are the pairs set in both cases with different values:
	// kubectl uses the upper-case one, curl and Python the lower-case one.
	Conflicts []CaseConflict
}

// CaseConflict is a proxy variable set in both cases with different values.
type CaseConflict struct {
	Upper, Lower           string // the variable names
	UpperValue, LowerValue string // redacted
}

// String says which programs use which value.
func (c CaseConflict) String() string {
	return fmt.Sprintf("%s=%s and %s=%s differ: kubectl and other Go programs use %s; curl and Python use %s",
		c.Upper, c.UpperValue, c.Lower, c.LowerValue, c.Upper, c.Lower)
}

// ProxyEnvFrom reads the proxy variables through getenv (os.Getenv in
// production, a map in tests), in kubectl's order: upper case first.
func ProxyEnvFrom(getenv func(string) string) ProxyEnv {
	var e ProxyEnv
	e.HTTPSProxy, e.HTTPSProxyVar = firstSet(getenv, "HTTPS_PROXY", "https_proxy")
	e.HTTPProxy, e.HTTPProxyVar = firstSet(getenv, "HTTP_PROXY", "http_proxy")
	e.NoProxy, e.NoProxyVar = firstSet(getenv, "NO_PROXY", "no_proxy")
	e.KubeNoProxy, e.KubeNoProxyVar = e.NoProxy, e.NoProxyVar
	e.AllProxy, _ = firstSet(getenv, "ALL_PROXY", "all_proxy")
	e.CGI = getenv("REQUEST_METHOD") != ""
	for _, upper := range []string{"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"} {
		lower := strings.ToLower(upper)
		uv, lv := getenv(upper), getenv(lower)
		if uv != "" && lv != "" && uv != lv {
			e.Conflicts = append(e.Conflicts, CaseConflict{Upper: upper, Lower: lower,
				UpperValue: redactURLString(uv), LowerValue: redactURLString(lv)})
		}
	}
	return e
}

func firstSet(getenv func(string) string, names ...string) (value, name string) {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v, n
		}
	}
	return "", ""
}

// Config is the httpproxy configuration Go builds from this environment.
func (e ProxyEnv) Config() *httpproxy.Config {
	return &httpproxy.Config{HTTPProxy: e.HTTPProxy, HTTPSProxy: e.HTTPSProxy, NoProxy: e.NoProxy, CGI: e.CGI}
}

// EntryKind is how Go reads one NO_PROXY entry.
type EntryKind string

// The kinds of NO_PROXY entries, as httpproxy parses them.
const (
	// EntryAll is "*": never use a proxy. Go honours it anywhere in the
	// list and reads no entry after it.
	EntryAll EntryKind = "all"
	// EntryCIDR is an IPv4 or IPv6 prefix (10.0.0.0/8). It matches only
	// URLs whose host is an IP address: Go never resolves a name to
	// compare it.
	EntryCIDR EntryKind = "cidr"
	// EntryIP is an IP address, optionally with a port (10.0.0.1,
	// 10.0.0.1:443, ::1, [::1]:443). It matches only that IP literal.
	EntryIP EntryKind = "ip"
	// EntryDomain is a name, optionally with a port. "example.com" matches
	// example.com and every name ending in ".example.com"; ".example.com"
	// and "*.example.com" match only names ending in ".example.com".
	// A domain entry never matches a URL whose host is an IP address.
	EntryDomain EntryKind = "domain"
	// EntryIgnored is an entry Go skips (no host part, or after "*").
	EntryIgnored EntryKind = "ignored"
)

// NoProxyEntry is one NO_PROXY entry as Go reads it.
type NoProxyEntry struct {
	// Entry is the entry as written, trimmed.
	Entry string    `json:"entry"`
	Kind  EntryKind `json:"kind"`
	// Suffix is, for a domain entry, the lower-case suffix Go compares
	// names against (always with a leading dot).
	Suffix string `json:"suffix,omitempty"`
	// AlsoExact is set for a domain entry written without a leading dot:
	// it also matches the name itself.
	AlsoExact bool `json:"alsoExact,omitempty"`
	// Port, when set, restricts the entry to URLs with that port (the
	// scheme's default port counts: 443 for https).
	Port string `json:"port,omitempty"`

	cidr *net.IPNet
	ip   net.IP
}

// Describe says in words what the entry matches.
func (e NoProxyEntry) Describe() string {
	port := ""
	if e.Port != "" {
		port = " on port " + e.Port
	}
	switch e.Kind {
	case EntryAll:
		return "* (never use a proxy)"
	case EntryCIDR:
		return "CIDR " + e.cidr.String() + ": IP-address URLs inside it"
	case EntryIP:
		return "IP " + e.ip.String() + port + ": only that IP-address URL"
	case EntryDomain:
		if e.AlsoExact {
			return fmt.Sprintf("%s and names ending in %s%s", e.Suffix[1:], e.Suffix, port)
		}
		return fmt.Sprintf("names ending in %s%s (not %s itself)", e.Suffix, port, e.Suffix[1:])
	default:
		return "ignored by Go"
	}
}

// ParseNoProxy reads a NO_PROXY value exactly as httpproxy does: entries
// are separated by commas, trimmed and lower-cased; empty entries are
// skipped; "*" ends the list. Then, in this order, an entry is a CIDR, an
// IP (with optional :port; brackets around IPv6 are optional without a
// port), or a domain (with optional :port; "*." and "." prefixes mean
// subdomains only). Non-ASCII domains are converted to punycode.
func ParseNoProxy(s string) []NoProxyEntry {
	var entries []NoProxyEntry
	afterAll := false
	for _, raw := range strings.Split(s, ",") {
		p := strings.ToLower(strings.TrimSpace(raw))
		if p == "" {
			continue
		}
		if afterAll {
			entries = append(entries, NoProxyEntry{Entry: p, Kind: EntryIgnored})
			continue
		}
		if p == "*" {
			entries = append(entries, NoProxyEntry{Entry: p, Kind: EntryAll})
			afterAll = true
			continue
		}
		entries = append(entries, parseNoProxyEntry(p))
	}
	return entries
}

// parseNoProxyEntry follows httpproxy's config.init line by line.
func parseNoProxyEntry(p string) NoProxyEntry {
	e := NoProxyEntry{Entry: p, Kind: EntryIgnored}
	if _, pnet, err := net.ParseCIDR(p); err == nil {
		e.Kind, e.cidr = EntryCIDR, pnet
		return e
	}
	phost, pport, err := net.SplitHostPort(p)
	if err == nil {
		if len(phost) == 0 {
			return e
		}
		if phost[0] == '[' && phost[len(phost)-1] == ']' {
			phost = phost[1 : len(phost)-1]
		}
	} else {
		phost = p
	}
	if pip := net.ParseIP(phost); pip != nil {
		e.Kind, e.ip, e.Port = EntryIP, pip, pport
		return e
	}
	if len(phost) == 0 {
		return e
	}
	if strings.HasPrefix(phost, "*.") {
		phost = phost[1:]
	}
	matchHost := false
	if phost[0] != '.' {
		matchHost = true
		phost = "." + phost
	}
	if v, err := idnaASCII(phost); err == nil {
		phost = v
	}
	e.Kind, e.Suffix, e.AlsoExact, e.Port = EntryDomain, phost, matchHost, pport
	return e
}

// matches follows httpproxy's matchers. host is lower-cased; ip is the
// host as an IP address, or nil.
func (e NoProxyEntry) matches(host, port string, ip net.IP) bool {
	switch e.Kind {
	case EntryAll:
		return true
	case EntryCIDR:
		return ip != nil && e.cidr.Contains(ip)
	case EntryIP:
		return ip != nil && e.ip.Equal(ip) && (e.Port == "" || e.Port == port)
	case EntryDomain:
		if ip != nil {
			return false
		}
		if strings.HasSuffix(host, e.Suffix) || (e.AlsoExact && host == e.Suffix[1:]) {
			return e.Port == "" || e.Port == port
		}
	}
	return false
}

// Bypass is why Go does not use the proxy for a URL.
type Bypass string

// The reasons for not using a proxy.
const (
	// BypassNone: the proxy is used.
	BypassNone Bypass = ""
	// BypassLoopback: the host is "localhost" or a loopback IP. Go never
	// proxies these, whatever NO_PROXY says.
	BypassLoopback Bypass = "loopback"
	// BypassEntry: a NO_PROXY entry matched.
	BypassEntry Bypass = "no_proxy"
	// BypassKubeCIDR: kubectl's extra CIDR rule (apimachinery) matched.
	BypassKubeCIDR Bypass = "kubectl-cidr"
	// BypassBadAddress: the URL's host:port could not be split; Go does not
	// proxy it.
	BypassBadAddress Bypass = "bad-address"
)

// MatchNoProxy explains Go's NO_PROXY decision for u: the reason the proxy
// is bypassed and, for BypassEntry, the first entry that matched in Go's
// order (IP and CIDR entries before domain entries). It mirrors httpproxy's
// useProxy and agrees with httpproxy.Config.ProxyFunc for every input (a
// table test and a fuzz target check this).
func MatchNoProxy(entries []NoProxyEntry, u *url.URL) (Bypass, *NoProxyEntry) {
	host, port := canonicalHostPort(u)
	host, port, err := net.SplitHostPort(net.JoinHostPort(host, port))
	if err != nil {
		return BypassBadAddress, nil
	}
	if host == "localhost" {
		return BypassLoopback, nil
	}
	var ip net.IP
	if nip, err := netip.ParseAddr(host); err == nil {
		ip = net.IP(nip.AsSlice())
		if ip.IsLoopback() {
			return BypassLoopback, nil
		}
	}
	lower := strings.ToLower(strings.TrimSpace(host))
	if ip != nil {
		for i, e := range entries {
			if (e.Kind == EntryCIDR || e.Kind == EntryIP || e.Kind == EntryAll) && e.matches(lower, port, ip) {
				return BypassEntry, &entries[i]
			}
		}
	}
	for i, e := range entries {
		if (e.Kind == EntryDomain || e.Kind == EntryAll) && e.matches(lower, port, ip) {
			return BypassEntry, &entries[i]
		}
	}
	return BypassNone, nil
}

// canonicalHostPort is httpproxy's canonicalAddr, split: the host in
// punycode, the port from the URL or the scheme's default.
func canonicalHostPort(u *url.URL) (host, port string) {
	host = u.Hostname()
	if v, err := idnaASCII(host); err == nil {
		host = v
	}
	port = u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "socks5": "1080"}[u.Scheme]
	}
	return host, port
}

func idnaASCII(v string) (string, error) {
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x80 {
			return idna.Lookup.ToASCII(v)
		}
	}
	return v, nil
}

// kubeCIDRBypass is apimachinery's NewProxierWithNoProxyCIDR: for an IP
// host, the first CIDR entry of kubeNoProxy (split on commas, not trimmed,
// parsed leniently) that contains it.
func kubeCIDRBypass(kubeNoProxy string, u *url.URL) string {
	ip := netutils.ParseIPSloppy(u.Hostname())
	if ip == nil {
		return ""
	}
	for _, rule := range strings.Split(kubeNoProxy, ",") {
		if _, cidr, _ := netutils.ParseCIDRSloppy(rule); cidr != nil && cidr.Contains(ip) {
			return rule
		}
	}
	return ""
}

// ProxyInput is what DecideProxy decides on.
type ProxyInput struct {
	// URL is the API server URL.
	URL *url.URL
	// ClusterProxyURL is the kubeconfig cluster's proxy-url, if any.
	ClusterProxyURL *url.URL
	Env             ProxyEnv
	// Name is the classified host, used to suggest the narrowest NO_PROXY
	// entry.
	Name NameInfo
}

// ProxyDecision is which proxy kubectl uses for the API server and why.
type ProxyDecision struct {
	// URL is scheme://host:port of the API server.
	URL string `json:"url"`
	// Source is "proxy-url" (the kubeconfig), "environment" or "none".
	Source string `json:"source"`
	// Proxy is the proxy kubectl uses (password redacted); empty means a
	// direct connection.
	Proxy string `json:"proxy,omitempty"`
	// Variable is the environment variable Proxy came from.
	Variable string `json:"variable,omitempty"`
	// ConfiguredProxy is the proxy the environment names for this scheme,
	// whether or not it is used.
	ConfiguredProxy string `json:"configuredProxy,omitempty"`
	// NoProxy is the NO_PROXY value Go reads and NoProxyVar its variable.
	NoProxy    string         `json:"noProxy,omitempty"`
	NoProxyVar string         `json:"noProxyVar,omitempty"`
	Entries    []NoProxyEntry `json:"entries,omitempty"`
	// Bypass is why the configured proxy is not used; Matched is the entry
	// that matched (Bypass "no_proxy") or the kubectl CIDR rule.
	Bypass  Bypass `json:"bypass,omitempty"`
	Matched string `json:"matched,omitempty"`
	// Suggest are NO_PROXY entries that would make kubectl go direct,
	// narrowest first; each is checked against httpproxy itself.
	Suggest []string `json:"suggest,omitempty"`
	// Notes are the rules that matter for this URL, and where curl or
	// other tools decide differently.
	Notes []string `json:"notes,omitempty"`
	// Ignored is set when the proxy variable is set but Go cannot parse
	// it: kubectl then silently goes direct.
	Ignored string `json:"ignored,omitempty"`
	// Error is set when Go refuses the request because of the proxy
	// setting (HTTP_PROXY in a CGI environment).
	Error string `json:"error,omitempty"`

	proxy *url.URL // as configured, with its password: used to dial
}

// UsesProxy reports whether kubectl sends the API server traffic to a proxy.
func (d *ProxyDecision) UsesProxy() bool { return d.proxy != nil }

// ProxyURL is the proxy to dial, with its credentials; nil for direct.
func (d *ProxyDecision) ProxyURL() *url.URL { return d.proxy }

// DecideProxy decides which proxy kubectl uses for in.URL, the way kubectl
// does:
//
//   - A cluster proxy-url in the kubeconfig wins: every request goes
//     through it; HTTPS_PROXY and NO_PROXY are not read.
//   - Otherwise the verdict is Go's: httpproxy.Config{...}.ProxyFunc() over
//     the environment as ProxyEnvFrom read it (HTTPS_PROXY, else
//     https_proxy, for https URLs; HTTP_PROXY, else http_proxy, for http;
//     NO_PROXY, else no_proxy). Go never proxies localhost or loopback IPs.
//   - Then kubectl's CIDR rule: an IP-address URL inside a CIDR entry of
//     the same NO_PROXY value goes direct.
//
// MatchNoProxy explains the verdict; when the proxy is used, Suggest holds
// the entries to add, each verified with httpproxy.
func DecideProxy(in ProxyInput) ProxyDecision {
	u := in.URL
	host, port := canonicalHostPort(u)
	d := ProxyDecision{
		URL:        u.Scheme + "://" + joinHostPort(host, port),
		Source:     "none",
		NoProxy:    in.Env.NoProxy,
		NoProxyVar: in.Env.NoProxyVar,
		Entries:    ParseNoProxy(in.Env.NoProxy),
	}
	if in.ClusterProxyURL != nil {
		d.Source = "proxy-url"
		d.proxy = in.ClusterProxyURL
		d.Proxy = in.ClusterProxyURL.Redacted()
		d.ConfiguredProxy = d.Proxy
		d.Notes = append(d.Notes, "the kubeconfig cluster sets proxy-url: kubectl sends every request to this cluster through it, loopback included, and ignores HTTPS_PROXY and NO_PROXY")
		return d
	}
	raw, variable := in.Env.HTTPSProxy, in.Env.HTTPSProxyVar
	if u.Scheme == "http" {
		raw, variable = in.Env.HTTPProxy, in.Env.HTTPProxyVar
	}
	if raw == "" {
		return d
	}
	d.Source = "environment"
	d.Variable = variable
	d.ConfiguredProxy = redactURLString(raw)

	// The verdict: Go's own code.
	proxy, err := in.Env.Config().ProxyFunc()(u)
	if err != nil {
		d.Error = err.Error()
		return d
	}
	bypass, matched := MatchNoProxy(d.Entries, u)
	switch {
	case proxy == nil && bypass == BypassNone:
		// The variable is set but Go could not parse it as a proxy URL.
		d.Ignored = fmt.Sprintf("%s is set but Go cannot parse it as a URL, so kubectl ignores it and connects directly", variable)
		return d
	case proxy == nil:
		d.Bypass = bypass
		if matched != nil {
			d.Matched = matched.Entry
		}
	default:
		if rule := kubeCIDRBypass(in.Env.KubeNoProxy, u); rule != "" {
			d.Bypass, d.Matched = BypassKubeCIDR, rule
		} else {
			d.proxy, d.Proxy = proxy, proxy.Redacted()
			d.Suggest = suggestNoProxy(in, u)
		}
	}
	d.Notes = proxyNotes(in, d, matched)
	return d
}

// suggestNoProxy returns NO_PROXY entries that make Go bypass the proxy for
// u, narrowest first. For an AKS private FQDN that is the region's private
// zone (every private cluster of the region, nothing public); for a public
// FQDN the host itself (other *.hcp names may be public clusters that need
// the proxy). Every suggestion is checked against httpproxy.
func suggestNoProxy(in ProxyInput, u *url.URL) []string {
	host, _ := canonicalHostPort(u)
	dot := ""
	if strings.HasSuffix(host, ".") {
		dot = "." // Go compares literally: the entry needs the dot too
	}
	var cands []string
	switch in.Name.Kind {
	case NameAKSPrivate:
		cands = []string{".privatelink." + in.Name.Region + "." + aksDomain + dot, host, "." + aksDomain + dot}
	case NameAKSPublic:
		cands = []string{host, ".hcp." + in.Name.Region + "." + aksDomain + dot}
	case NameAKSOther:
		cands = []string{host, "." + aksDomain + dot}
	case NameIP:
		cands = []string{strings.Trim(host, "[]")}
	default:
		cands = []string{host}
	}
	var out []string
	for _, c := range cands {
		cfg := in.Env.Config()
		cfg.NoProxy = joinNoProxy(in.Env.NoProxy, c)
		if p, err := cfg.ProxyFunc()(u); err == nil && p == nil {
			out = append(out, c)
		}
	}
	return out
}

func joinNoProxy(current, entry string) string {
	current = strings.TrimRight(strings.TrimSpace(current), ",")
	if current == "" {
		return entry
	}
	return current + "," + entry
}

// proxyNotes explains the rules that decided this URL and where curl would
// decide differently. curl facts are from its noproxy.c and libcurl-env(3).
func proxyNotes(in ProxyInput, d ProxyDecision, matched *NoProxyEntry) []string {
	var notes []string
	host, _ := canonicalHostPort(in.URL)
	isIP := in.Name.Kind == NameIP
	switch d.Bypass {
	case BypassLoopback:
		notes = append(notes, "Go never sends localhost or loopback addresses to a proxy, whatever NO_PROXY says")
	case BypassKubeCIDR:
		notes = append(notes, fmt.Sprintf("Go's own rules would use the proxy, but kubectl (apimachinery NewProxierWithNoProxyCIDR) goes direct: %q in %s contains the IP", d.Matched, in.Env.KubeNoProxyVar))
	}
	if matched != nil {
		notes = append(notes, fmt.Sprintf("matched %q: %s", matched.Entry, matched.Describe()))
	}
	var hasCIDR, hasLeadingDot, hasStar, hasPort, hasStarDot bool
	for _, e := range d.Entries {
		switch {
		case e.Kind == EntryCIDR:
			hasCIDR = true
		case e.Kind == EntryAll:
			hasStar = true
		case e.Kind == EntryDomain:
			hasLeadingDot = hasLeadingDot || strings.HasPrefix(e.Entry, ".")
			hasStarDot = hasStarDot || strings.HasPrefix(e.Entry, "*.")
		}
		if e.Port != "" {
			hasPort = true
		}
	}
	if hasCIDR && !isIP {
		notes = append(notes, "CIDR and IP entries only match URLs whose host is an IP address: Go (like curl) never resolves "+host+" to compare it")
	}
	if hasCIDR && isIP {
		notes = append(notes, "curl honours CIDR entries only since 7.86.0; older curl ignores them")
	}
	if hasLeadingDot {
		notes = append(notes, "Go: \".example.com\" matches only subdomains; curl drops the leading dot, so for curl it also matches example.com itself")
	}
	if hasStarDot {
		notes = append(notes, "Go reads \"*.example.com\" as \".example.com\"; curl has no such pattern (its only wildcard is a NO_PROXY of exactly \"*\")")
	}
	if hasStar && strings.TrimSpace(d.NoProxy) != "*" {
		notes = append(notes, "Go honours \"*\" anywhere in the list; curl only when NO_PROXY is exactly \"*\"")
	}
	if hasPort {
		notes = append(notes, "Go honours :port on an entry (the URL's default port counts); curl compares host names only, so an entry with a port never matches in curl")
	}
	if in.Name.TrailingDot {
		notes = append(notes, "the server name ends with a dot: Go matches NO_PROXY literally (\".example.com\" does not match \"x.example.com.\"), curl ignores trailing dots; remove the dot from the kubeconfig")
	}
	if in.Env.AllProxy != "" {
		notes = append(notes, "ALL_PROXY is set: curl uses it when no scheme-specific proxy is set; Go and kubectl ignore it")
	}
	if d.Variable == "HTTP_PROXY" {
		notes = append(notes, "curl never reads upper-case HTTP_PROXY (only http_proxy); Go does")
	}
	return notes
}

func joinHostPort(host, port string) string {
	if port == "" {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

// proxyStep turns the decision into the proxy step. A proxy on the way to
// a private endpoint is a warning, whether it comes from the environment or
// from the kubeconfig's proxy-url: corporate proxies usually cannot reach
// it. The tcp step then shows whether this one can.
func proxyStep(d *ProxyDecision, name NameInfo, private bool, sh Shell, cluster string) Step {
	s := Step{Name: StepProxy}
	switch {
	case d.Error != "":
		s.Status = StatusFail
		s.Summary = "kubectl refuses the proxy setting: " + d.Error
		s.fix("unset REQUEST_METHOD, or use HTTPS for the API server")
		return s
	case d.Ignored != "":
		s.Status = StatusWarn
		s.Summary = "direct: " + d.Ignored
		s.evidence("%s=%s", d.Variable, d.ConfiguredProxy)
		s.fix("set %s to a URL such as http://proxy.example.com:3128, or unset it", d.Variable)
		return s
	}
	s.Status = StatusOK
	switch d.Source {
	case "proxy-url":
		s.Summary = "kubectl sends " + d.URL + " through " + d.Proxy + " (proxy-url in the kubeconfig)"
		if private || name.Kind == NameAKSPrivate {
			s.Status = StatusWarn
			s.evidence("the proxy, not this machine, resolves and connects to %s; a corporate proxy usually cannot reach a private endpoint", name.Host)
			s.fix("remove proxy-url from cluster %q in the kubeconfig (kubectl config unset clusters.%s.proxy-url), or ask the proxy's owners to allow %s", cluster, cluster, strings.TrimPrefix(strings.TrimPrefix(d.URL, "https://"), "http://"))
		}
	case "none":
		v := "HTTPS_PROXY/https_proxy"
		if strings.HasPrefix(d.URL, "http://") {
			v = "HTTP_PROXY/http_proxy"
		}
		s.Summary = "direct: no proxy configured (" + v + " unset, no proxy-url)"
	default:
		s.evidence("%s=%s", d.Variable, d.ConfiguredProxy)
		if d.NoProxyVar != "" {
			s.evidence("%s=%s", d.NoProxyVar, d.NoProxy)
		} else {
			s.evidence("NO_PROXY and no_proxy are unset")
		}
		if d.UsesProxy() {
			s.Summary = "kubectl sends " + d.URL + " through the proxy " + d.Proxy + " (" + d.Variable + ")"
			if len(d.Entries) > 0 {
				s.evidence("no NO_PROXY entry matches %s:", d.URL)
				for _, e := range d.Entries {
					s.evidence("  %q: %s", e.Entry, e.Describe())
				}
			}
			if private || name.Kind == NameAKSPrivate {
				s.Status = StatusWarn
				s.evidence("the proxy, not this machine, resolves and connects to %s; a corporate proxy usually cannot reach a private endpoint", name.Host)
				if len(d.Suggest) > 0 {
					s.fix("%s", noProxyFix(sh, d, d.Suggest[0]))
				}
			}
			if len(d.Suggest) > 1 {
				s.evidence("other NO_PROXY entries that would send it direct: %s", strings.Join(quoteAll(d.Suggest[1:]), ", "))
			}
		} else {
			s.Summary = "direct: " + d.URL + " bypasses the proxy " + d.ConfiguredProxy
			switch d.Bypass {
			case BypassEntry:
				s.Summary += " (NO_PROXY entry " + fmt.Sprintf("%q", d.Matched) + ")"
			case BypassLoopback:
				s.Summary += " (loopback)"
			case BypassKubeCIDR:
				s.Summary += " (kubectl's NO_PROXY CIDR rule, " + fmt.Sprintf("%q", d.Matched) + ")"
			}
		}
	}
	for _, n := range d.Notes {
		s.evidence("%s", n)
	}
	if n := sh.systemProxyNote(); n != "" {
		s.evidence("%s", n)
	}
	return s
}

// addCaseConflicts warns about proxy variables set in both cases with
// different values: kubectl and curl then go different ways.
func addCaseConflicts(s *Step, env ProxyEnv, sh Shell) {
	for _, c := range env.Conflicts {
		if s.Status == StatusOK {
			s.Status = StatusWarn
		}
		s.evidence("warning: %s", c)
		s.fix("%s", conflictFix(sh, c))
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
