package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// DefaultExpiryWarning is how close to expiry a server certificate has to
// be for the tls step to warn.
const DefaultExpiryWarning = 30 * 24 * time.Hour

// TLSInput is what CheckTLS checks.
type TLSInput struct {
	// Conn is an open connection to the server (direct or tunnelled).
	Conn net.Conn
	// ServerName is sent in SNI (unless it is an IP) and the certificate
	// must be valid for it: kubectl uses tls-server-name when set, else the
	// host of the server URL.
	ServerName string
	// Roots are the CAs to trust; nil means the system roots.
	Roots *x509.CertPool
	// Now is the time certificates must be valid at.
	Now time.Time
}

// TLSResult is what the handshake showed.
type TLSResult struct {
	ServerName string `json:"serverName"`
	Version    string `json:"version,omitempty"`
	// Chain is the certificates the server sent, leaf first.
	Chain []CertInfo `json:"chain,omitempty"`
	// HandshakeError is set when no TLS session was established.
	HandshakeError string `json:"handshakeError,omitempty"`
	// ChainError is why the chain does not verify against the roots.
	ChainError string `json:"chainError,omitempty"`
	// NameError is why the leaf is not valid for ServerName.
	NameError string `json:"nameError,omitempty"`
	// ExpiresInDays is the number of whole days left on the leaf.
	ExpiresInDays int `json:"expiresInDays"`

	expiresIn time.Duration
	chainErr  error
}

// CheckTLS runs a TLS handshake on in.Conn and verifies, separately, the
// chain against in.Roots, the leaf against in.ServerName, and expiry. The
// handshake itself does not verify, so that every problem is reported, not
// only the first. The caller bounds the handshake with ctx.
func CheckTLS(ctx context.Context, in TLSInput) TLSResult {
	res := TLSResult{ServerName: in.ServerName}
	tc := tls.Client(in.Conn, &tls.Config{
		ServerName:         in.ServerName,
		InsecureSkipVerify: true, // verified below, step by step
		NextProtos:         []string{"h2", "http/1.1"},
	})
	defer tc.Close()
	if err := tc.HandshakeContext(ctx); err != nil {
		res.HandshakeError = err.Error()
		return res
	}
	st := tc.ConnectionState()
	res.Version = tls.VersionName(st.Version)
	if len(st.PeerCertificates) == 0 {
		res.HandshakeError = "the server sent no certificate"
		return res
	}
	for _, c := range st.PeerCertificates {
		res.Chain = append(res.Chain, certInfo(c))
	}
	leaf := st.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         in.Roots,
		Intermediates: inter,
		CurrentTime:   in.Now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		res.ChainError, res.chainErr = err.Error(), err
	}
	if err := leaf.VerifyHostname(in.ServerName); err != nil {
		res.NameError = err.Error()
	}
	res.expiresIn = leaf.NotAfter.Sub(in.Now)
	res.ExpiresInDays = int(res.expiresIn.Hours() / 24)
	return res
}

// tlsStep judges a TLSResult. insecure is the kubeconfig's
// insecure-skip-tls-verify: kubectl then ignores chain and name errors, so
// they are warnings.
func tlsStep(t *Target, r TLSResult, rt *route, viaProxy bool, warnBefore time.Duration) Step {
	s := Step{Name: StepTLS}
	if rt.hypothetical != "" {
		s.evidence("checked over %s (%s)", rt.describe(), rt.hypothetical)
	}
	if r.HandshakeError != "" {
		s.Status = StatusFail
		s.Summary = "TLS handshake failed: " + r.HandshakeError
		if strings.Contains(r.HandshakeError, "first record does not look like a TLS handshake") {
			s.fix("the server at %s does not speak TLS: check the port, or use http:// if it really is plain HTTP", t.HostPort())
		} else {
			s.fix("check that %s is the Kubernetes API server (and that nothing in the path intercepts TLS)", t.HostPort())
		}
		return s
	}
	leaf := r.Chain[0]
	s.evidence("server certificate: subject %q, issuer %q, valid until %s", leaf.Subject, leaf.Issuer, leaf.NotAfter.UTC().Format(time.RFC3339))
	s.evidence("SANs: %s", strings.Join(sans(leaf), ", "))
	roots := "the kubeconfig CA"
	if t.CA.Source == "system roots" {
		roots = "the system roots (no certificate-authority in the kubeconfig)"
	} else if len(t.CA.Certificates) > 0 {
		roots = fmt.Sprintf("the kubeconfig CA %q", t.CA.Certificates[0].Subject)
	}
	fail := StatusFail
	if t.InsecureSkipTLSVerify {
		fail = StatusWarn
		s.evidence("insecure-skip-tls-verify is true: kubectl ignores the problems below, and so would an attacker in the path")
	}
	var problems []string
	var ie x509.CertificateInvalidError
	switch {
	case r.ChainError == "":
	case errors.As(r.chainErr, &ie) && ie.Reason == x509.Expired:
		problems = append(problems, "the certificate is expired or not yet valid ("+r.ChainError+")")
		s.fix("check this machine's clock; if it is right, the cluster's certificates need rotating (AKS: az aks rotate-certs -g <resource-group> -n <cluster>)")
	default:
		var ua x509.UnknownAuthorityError
		if errors.As(r.chainErr, &ua) {
			problems = append(problems, fmt.Sprintf("the certificate chain (issuer %q) is not signed by %s", leaf.Issuer, roots))
		} else {
			problems = append(problems, "the certificate chain does not verify against "+roots+": "+r.ChainError)
		}
		if viaProxy {
			s.evidence("the connection goes through a proxy: a TLS-inspecting proxy presents its own certificate (issuer %q); bypass it with NO_PROXY", leaf.Issuer)
		}
		s.fix("use this cluster's CA: fetch the kubeconfig again (az aks get-credentials -g <resource-group> -n <cluster>) or copy certificate-authority-data from a working kubeconfig of cluster %q", t.Cluster)
	}
	if r.NameError != "" {
		name := t.VerifyName()
		problems = append(problems, fmt.Sprintf("the certificate is not valid for %s (SANs: %s)", name, strings.Join(sans(leaf), ", ")))
		if t.TLSServerName != "" {
			s.fix("tls-server-name %q is not in the certificate: set it to one of its SANs (kubectl config set-cluster %s --tls-server-name=<SAN>)", t.TLSServerName, t.Cluster)
		} else {
			s.fix("use a name the certificate lists in the server URL (one of: %s), or keep the URL and set tls-server-name to one of them (kubectl config set-cluster %s --tls-server-name=<SAN>)", strings.Join(sans(leaf), ", "), t.Cluster)
		}
	}
	if len(problems) > 0 {
		s.Status = fail
		s.Summary = strings.Join(problems, "; ")
		return s
	}
	s.Status = StatusOK
	s.Summary = fmt.Sprintf("%s, certificate valid for %s, chain verified against %s", r.Version, t.VerifyName(), roots)
	if r.expiresIn < warnBefore {
		s.Status = StatusWarn
		s.Summary += fmt.Sprintf("; it expires in %d days (%s)", r.ExpiresInDays, leaf.NotAfter.UTC().Format(time.DateOnly))
		s.fix("plan the certificate rotation before %s (AKS: az aks rotate-certs -g <resource-group> -n <cluster>)", leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	return s
}

// sans lists a certificate's DNS and IP SANs, each once.
func sans(c CertInfo) []string {
	var out []string
	for _, n := range append(append([]string{}, c.DNSNames...), c.IPAddresses...) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}
