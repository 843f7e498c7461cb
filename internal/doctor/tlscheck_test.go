package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// serve runs a TLS server on loopback with a leaf certificate for names,
// valid from notBefore to notAfter, and returns its address.
func (ca *testCA) serve(t *testing.T, names []string, notBefore, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, ln, func(c net.Conn) {
		go func() {
			defer c.Close()
			_ = c.(*tls.Conn).Handshake()
			_, _ = c.Read(make([]byte, 1))
		}()
	})
}

// plainHTTP answers every connection with an HTTP response, not TLS.
func plainHTTP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, ln, func(c net.Conn) {
		_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
		c.Close()
	})
}

func TestCheckTLS(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	other := newTestCA(t, "another-cluster-ca")
	now := time.Now()
	day := 24 * time.Hour
	aks := []string{testAKSName, "127.0.0.1"}
	tests := []struct {
		name       string
		addr       string
		serverName string
		tlsName    string // kubeconfig tls-server-name
		roots      *testCA
		insecure   bool
		want       Status
		wantText   string
	}{
		{name: "valid", addr: ca.serve(t, aks, now.Add(-day), now.Add(365*day)), serverName: testAKSName, roots: ca, want: StatusOK, wantText: "chain verified"},
		{name: "valid for the IP", addr: ca.serve(t, aks, now.Add(-day), now.Add(365*day)), serverName: "127.0.0.1", roots: ca, want: StatusOK},
		{name: "expires in 10 days", addr: ca.serve(t, aks, now.Add(-day), now.Add(10*day+time.Hour)), serverName: testAKSName, roots: ca, want: StatusWarn, wantText: "expires in 10 days"},
		{name: "expired", addr: ca.serve(t, aks, now.Add(-2*day), now.Add(-day)), serverName: testAKSName, roots: ca, want: StatusFail, wantText: "expired"},
		{name: "wrong CA", addr: ca.serve(t, aks, now.Add(-day), now.Add(365*day)), serverName: testAKSName, roots: other, want: StatusFail, wantText: `not signed by the kubeconfig CA "CN=another-cluster-ca"`},
		{name: "wrong SAN", addr: ca.serve(t, []string{"localhost", "127.0.0.1"}, now.Add(-day), now.Add(365*day)), serverName: testAKSName, roots: ca, want: StatusFail, wantText: "not valid for " + testAKSName + " (SANs: localhost, 127.0.0.1)"},
		{name: "wrong tls-server-name", addr: ca.serve(t, aks, now.Add(-day), now.Add(365*day)), serverName: "api.internal", tlsName: "api.internal", roots: ca, want: StatusFail, wantText: "tls-server-name"},
		{name: "insecure-skip-tls-verify turns errors into warnings", addr: ca.serve(t, aks, now.Add(-day), now.Add(365*day)), serverName: testAKSName, roots: other, insecure: true, want: StatusWarn},
		{name: "not TLS", addr: plainHTTP(t), serverName: testAKSName, roots: ca, want: StatusFail, wantText: "does not speak TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res := CheckTLS(ctx, TLSInput{Conn: conn, ServerName: tt.serverName, Roots: tt.roots.pool(), Now: now})
			target := &Target{Cluster: "aks", Host: tt.serverName, Port: "443", TLSServerName: tt.tlsName, InsecureSkipTLSVerify: tt.insecure,
				CA: CAInfo{Source: "certificate-authority-data", Certificates: []CertInfo{certInfo(tt.roots.cert)}}}
			s := tlsStep(target, res, &route{addr: netip.MustParseAddrPort(tt.addr)}, false, DefaultExpiryWarning)
			text := s.Text()
			t.Logf("step:\n%s", text)
			if s.Status != tt.want {
				t.Fatalf("status %s, want %s:\n%s", s.Status, tt.want, text)
			}
			if !strings.Contains(text, tt.wantText) {
				t.Errorf("step does not say %q:\n%s", tt.wantText, text)
			}
			if s.Status != StatusOK && len(s.Fixes) == 0 && !tt.insecure {
				t.Errorf("a %s step without a Fix line", s.Status)
			}
		})
	}
}
