package doctor

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// LoadOptions say which kubeconfig and context to read, as kubectl's
// --kubeconfig and --context do.
type LoadOptions struct {
	// Path is a kubeconfig file. Empty means the files in KUBECONFIG
	// (a path list, merged as kubectl merges them) or, when KUBECONFIG is
	// empty, <Home>/.kube/config.
	Path string
	// Context is the context to use; empty means current-context.
	Context string
	// KubeconfigEnv is the value of KUBECONFIG.
	KubeconfigEnv string
	// Home is the user's home directory.
	Home string
}

// Target is the API server a kubeconfig context points at, read as kubectl
// reads it. It holds no secrets: credentials are described, never copied.
type Target struct {
	// Files are the kubeconfig files that were read.
	Files   []string `json:"files,omitempty"`
	Context string   `json:"context"`
	Cluster string   `json:"cluster"`
	User    string   `json:"user"`
	// Server is the server URL kubectl uses (credentials in it redacted).
	Server string `json:"server"`
	Scheme string `json:"scheme"`
	// Host is the host name or IP of the server, without brackets.
	Host string `json:"host"`
	// Port is the port from the URL or the scheme's default.
	Port string `json:"port"`
	// ProxyURL is the cluster's proxy-url (password redacted). When set,
	// kubectl sends every request to this cluster through it and ignores
	// HTTPS_PROXY and NO_PROXY.
	ProxyURL string `json:"proxyURL,omitempty"`
	// TLSServerName is the cluster's tls-server-name: the name kubectl
	// sends in SNI and verifies the certificate against instead of Host.
	TLSServerName string `json:"tlsServerName,omitempty"`
	// InsecureSkipTLSVerify is the cluster's insecure-skip-tls-verify.
	InsecureSkipTLSVerify bool     `json:"insecureSkipTLSVerify,omitempty"`
	CA                    CAInfo   `json:"ca"`
	Auth                  AuthInfo `json:"auth"`
	// Warnings are things kubectl accepts but that are likely mistakes.
	Warnings []string `json:"warnings,omitempty"`

	url      *url.URL
	proxyURL *url.URL // as written: may hold a proxy password
	raw      *clientcmdapi.Config
}

// URL is the server URL kubectl uses.
func (t *Target) URL() *url.URL { u := *t.url; return &u }

// HostPort is host:port of the server.
func (t *Target) HostPort() string { return joinHostPort(t.Host, t.Port) }

// VerifyName is the name the server certificate must be valid for:
// tls-server-name when set, else the host.
func (t *Target) VerifyName() string {
	if t.TLSServerName != "" {
		return t.TLSServerName
	}
	return t.Host
}

// CAInfo says where kubectl's trust in the server comes from.
type CAInfo struct {
	// Source is "certificate-authority-data", "certificate-authority"
	// (a file) or "system roots".
	Source string `json:"source"`
	File   string `json:"file,omitempty"`
	// Certificates describe the CA certificates, once read.
	Certificates []CertInfo `json:"certificates,omitempty"`
	// Error is why the CA could not be read or parsed.
	Error string `json:"error,omitempty"`

	data []byte
	pool *x509.CertPool // nil: system roots
}

// AuthInfo describes the credentials of the context's user without
// revealing them.
type AuthInfo struct {
	// Kinds are the credential kinds present: client-certificate, token,
	// token-file, basic, exec, auth-provider; empty means anonymous.
	Kinds []string `json:"kinds,omitempty"`
	// Details are non-secret facts: a client certificate's subject, an
	// exec plugin's command, a basic-auth user name.
	Details []string `json:"details,omitempty"`
}

// CertInfo is what the doctor shows of a certificate.
type CertInfo struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	DNSNames    []string  `json:"dnsNames,omitempty"`
	IPAddresses []string  `json:"ipAddresses,omitempty"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	IsCA        bool      `json:"isCA,omitempty"`
}

func certInfo(c *x509.Certificate) CertInfo {
	info := CertInfo{
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		DNSNames:  c.DNSNames,
		NotBefore: c.NotBefore,
		NotAfter:  c.NotAfter,
		IsCA:      c.IsCA,
	}
	for _, ip := range c.IPAddresses {
		info.IPAddresses = append(info.IPAddresses, ip.String())
	}
	return info
}

// LoadTarget reads the kubeconfig files as kubectl does (merging a
// KUBECONFIG list, resolving relative paths against the file that holds
// them) and returns the Target of the chosen context. Errors are input
// errors (see ErrBadInput): a missing or unparsable file, an unknown
// context, a context without a server.
func LoadTarget(opts LoadOptions) (*Target, error) {
	rules := &clientcmd.ClientConfigLoadingRules{}
	switch {
	case opts.Path != "":
		rules.ExplicitPath = opts.Path
	case opts.KubeconfigEnv != "":
		rules.Precedence = filepath.SplitList(opts.KubeconfigEnv)
	default:
		rules.Precedence = []string{filepath.Join(opts.Home, ".kube", "config")}
	}
	var files []string
	for _, f := range append([]string{rules.ExplicitPath}, rules.Precedence...) {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		where := opts.Path
		if where == "" {
			where = strings.Join(rules.Precedence, string(filepath.ListSeparator))
		}
		return nil, inputErrorf("no kubeconfig at %s: pass --kubeconfig FILE or set KUBECONFIG", where)
	}
	cfg, err := safeLoad(rules.Load)
	if err != nil {
		return nil, inputErrorf("read kubeconfig: %v", err)
	}
	t, err := targetFromConfig(cfg, opts.Context)
	if err != nil {
		return nil, err
	}
	t.Files = files
	return t, nil
}

// ParseKubeconfig reads one kubeconfig document and returns the Target of
// the context (empty: current-context). It does no I/O: files the
// kubeconfig refers to (CA, certificates, token files) are named, not read.
// Every error is an input error.
func ParseKubeconfig(data []byte, context string) (*Target, error) {
	cfg, err := safeLoad(func() (*clientcmdapi.Config, error) { return clientcmd.Load(data) })
	if err != nil {
		return nil, inputErrorf("parse kubeconfig: %v", err)
	}
	return targetFromConfig(cfg, context)
}

// safeLoad turns a panic in the kubeconfig decoder into an error: the input
// is untrusted and a diagnosis tool must not crash on it.
func safeLoad(load func() (*clientcmdapi.Config, error)) (cfg *clientcmdapi.Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			cfg, err = nil, fmt.Errorf("malformed kubeconfig: %v", r)
		}
	}()
	return load()
}

func targetFromConfig(cfg *clientcmdapi.Config, contextName string) (*Target, error) {
	contexts := sortedKeys(cfg.Contexts)
	name := contextName
	if name == "" {
		name = cfg.CurrentContext
	}
	if name == "" {
		if len(contexts) == 0 {
			return nil, inputErrorf("the kubeconfig has no contexts: run az aks get-credentials (or your cluster's equivalent) first")
		}
		return nil, inputErrorf("the kubeconfig has no current-context: pass --context (one of %s)", strings.Join(contexts, ", "))
	}
	kctx, ok := cfg.Contexts[name]
	if !ok || kctx == nil {
		return nil, inputErrorf("context %q is not in the kubeconfig (contexts: %s)", name, listOrNone(contexts))
	}
	cluster, ok := cfg.Clusters[kctx.Cluster]
	if !ok || cluster == nil {
		return nil, inputErrorf("context %q uses cluster %q, which is not in the kubeconfig (clusters: %s)",
			name, kctx.Cluster, listOrNone(sortedKeys(cfg.Clusters)))
	}
	user := cfg.AuthInfos[kctx.AuthInfo]
	if kctx.AuthInfo != "" && user == nil {
		return nil, inputErrorf("context %q uses user %q, which is not in the kubeconfig (users: %s)",
			name, kctx.AuthInfo, listOrNone(sortedKeys(cfg.AuthInfos)))
	}
	if cluster.Server == "" {
		return nil, inputErrorf("cluster %q has no server URL", kctx.Cluster)
	}
	t := &Target{
		Context:               name,
		Cluster:               kctx.Cluster,
		User:                  kctx.AuthInfo,
		TLSServerName:         cluster.TLSServerName,
		InsecureSkipTLSVerify: cluster.InsecureSkipTLSVerify,
		raw:                   cfg,
	}
	if err := t.setServer(cluster.Server); err != nil {
		return nil, err
	}
	if cluster.ProxyURL != "" {
		// clientcmd's own rule (tools/clientcmd parseProxyURL).
		u, err := url.Parse(cluster.ProxyURL)
		if err != nil {
			return nil, inputErrorf("cluster %q: proxy-url %q is not a valid URL", kctx.Cluster, redactURLString(cluster.ProxyURL))
		}
		switch u.Scheme {
		case "http", "https", "socks5":
		default:
			return nil, inputErrorf("cluster %q: proxy-url scheme %q is not supported by kubectl: use http, https or socks5", kctx.Cluster, u.Scheme)
		}
		t.proxyURL, t.ProxyURL = u, u.Redacted()
	}
	switch {
	case len(cluster.CertificateAuthorityData) > 0:
		t.CA = CAInfo{Source: "certificate-authority-data", data: cluster.CertificateAuthorityData}
		t.CA.parse()
	case cluster.CertificateAuthority != "":
		t.CA = CAInfo{Source: "certificate-authority", File: cluster.CertificateAuthority}
	default:
		t.CA = CAInfo{Source: "system roots"}
	}
	if user != nil {
		t.Auth = describeAuth(user)
	}
	if t.InsecureSkipTLSVerify {
		t.Warnings = append(t.Warnings, "insecure-skip-tls-verify is true: kubectl does not check the server certificate")
	}
	return t, nil
}

// setServer parses the server URL exactly as client-go does
// (rest.DefaultServerURL): a value without a scheme becomes http://, because
// kubectl decides on TLS before it has merged the CA.
func (t *Target) setServer(server string) error {
	u, _, err := rest.DefaultServerURL(server, "", schema.GroupVersion{}, false)
	if err != nil {
		return inputErrorf("cluster %q: server %q is not a valid URL", t.Cluster, redactURLString(server))
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return inputErrorf("cluster %q: server %q must be an https:// URL", t.Cluster, redactURLString(server))
	}
	if u.Hostname() == "" {
		return inputErrorf("cluster %q: server %q has no host", t.Cluster, redactURLString(server))
	}
	parsed, perr := url.Parse(server)
	if perr != nil || parsed.Scheme == "" || parsed.Host == "" {
		t.Warnings = append(t.Warnings, fmt.Sprintf("server %q has no scheme: kubectl uses plain %s://", redactURLString(server), u.Scheme))
	} else if u.Scheme == "http" {
		t.Warnings = append(t.Warnings, "the server URL is http://: credentials and traffic are not encrypted")
	}
	t.url = u
	t.Server = u.Redacted()
	t.Scheme = u.Scheme
	t.Host = u.Hostname()
	t.Port = u.Port()
	if t.Port == "" {
		t.Port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	return nil
}

// parse fills Certificates (or Error) from the CA data and builds the pool.
func (ca *CAInfo) parse() {
	certs, err := parseCertsPEM(ca.data)
	if err != nil {
		ca.Error = err.Error()
		return
	}
	ca.pool = x509.NewCertPool()
	for _, c := range certs {
		ca.pool.AddCert(c)
		ca.Certificates = append(ca.Certificates, certInfo(c))
	}
}

// load reads a CA file named by the kubeconfig.
func (ca *CAInfo) load() {
	if ca.Source != "certificate-authority" || ca.data != nil || ca.Error != "" {
		return
	}
	data, err := os.ReadFile(ca.File)
	if err != nil {
		ca.Error = err.Error()
		return
	}
	ca.data = data
	ca.parse()
}

// parseCertsPEM returns the certificates in PEM data. Data that holds no
// certificate is an error.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse CA certificate: %v", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found in the CA data")
	}
	return certs, nil
}

// describeAuth names the credentials present, with non-secret details only.
func describeAuth(u *clientcmdapi.AuthInfo) AuthInfo {
	var a AuthInfo
	if len(u.ClientCertificateData) > 0 || u.ClientCertificate != "" {
		a.Kinds = append(a.Kinds, "client-certificate")
		if certs, err := parseCertsPEM(u.ClientCertificateData); err == nil {
			c := certs[0]
			d := "client certificate for user " + quoteOrDash(c.Subject.CommonName)
			if len(c.Subject.Organization) > 0 {
				d += ", groups " + strings.Join(c.Subject.Organization, ", ")
			}
			a.Details = append(a.Details, d+", expires "+c.NotAfter.UTC().Format(time.DateOnly))
		} else if u.ClientCertificate != "" {
			a.Details = append(a.Details, "client certificate file "+u.ClientCertificate)
		}
	}
	if u.Token != "" {
		a.Kinds = append(a.Kinds, "token")
	}
	if u.TokenFile != "" {
		a.Kinds = append(a.Kinds, "token-file")
		a.Details = append(a.Details, "token file "+u.TokenFile)
	}
	if u.Username != "" || u.Password != "" {
		a.Kinds = append(a.Kinds, "basic")
		a.Details = append(a.Details, "basic auth user "+quoteOrDash(u.Username))
	}
	if u.Exec != nil {
		a.Kinds = append(a.Kinds, "exec")
		d := "exec plugin " + filepath.Base(u.Exec.Command)
		// kubelogin's login mode says a lot; other arguments may hold
		// secrets (--client-secret) and are not shown.
		if i := slices.Index(u.Exec.Args, "--login"); i >= 0 && i+1 < len(u.Exec.Args) {
			d += " --login " + u.Exec.Args[i+1]
		}
		a.Details = append(a.Details, d+" (arguments and environment not shown)")
	}
	if u.AuthProvider != nil {
		a.Kinds = append(a.Kinds, "auth-provider")
		a.Details = append(a.Details, "auth provider "+u.AuthProvider.Name+" (configuration not shown)")
	}
	if u.Impersonate != "" {
		a.Details = append(a.Details, "impersonates user "+u.Impersonate)
	}
	return a
}

func quoteOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return fmt.Sprintf("%q", s)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// redactURLString hides a password in a URL-like string, also when it does
// not parse.
func redactURLString(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	if at := strings.LastIndex(s, "@"); at >= 0 {
		if scheme := strings.Index(s, "://"); scheme >= 0 && scheme < at {
			return s[:scheme+3] + "xxxxx" + s[at:]
		}
		return "xxxxx" + s[at:]
	}
	return s
}
