package guard_test

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
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/guard"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

// TestClientCAFileRequiresTheAPIServersCertificate: with --client-ca-file,
// a caller without a client certificate signed by that CA does not get past
// the TLS handshake; one with such a certificate gets an answer.
func TestClientCAFileRequiresTheAPIServersCertificate(t *testing.T) {
	env := devenvtest.StartWithCRDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	dir := t.TempDir()
	serving, err := webhook.SelfSignedCertificates([]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := serving.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	// The API server's client identity: a CA and a client certificate it
	// signed.
	caPEM, pair := clientCertificate(t)
	caFile := filepath.Join(t.TempDir(), "client-ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := guard.New(ctx, guard.Options{RestConfig: env.Config, Config: config.Default(), WebhookAddr: "127.0.0.1:0",
		CertDir: dir, SharedProcess: true, ClientCAFile: filepath.Join(dir, "tls.key")}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a client CA file with no certificate: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g, err := guard.New(ctx, guard.Options{RestConfig: env.Config, Config: config.Default(), WebhookAddr: addr,
		CertDir: dir, HealthAddr: "0", MetricsAddr: "0", SharedProcess: true, ClientCAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Start(ctx) }()
	if err := g.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serving.CACert)
	post := func(certs []tls.Certificate) error {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		for {
			resp, err := c.Post("https://"+addr+webhook.Path, "application/json", strings.NewReader(`{}`))
			if err != nil && strings.Contains(err.Error(), "connection refused") {
				time.Sleep(50 * time.Millisecond) // the server is still starting
				continue
			}
			if err == nil {
				resp.Body.Close()
			}
			return err
		}
	}
	if err := post([]tls.Certificate{pair}); err != nil {
		t.Fatalf("the API server's certificate was refused: %v", err)
	}
	if err := post(nil); err == nil {
		t.Fatal("a caller without a client certificate got an answer")
	}
	cancel()
	<-done
}

// clientCertificate returns a CA (PEM) and a client certificate it signed.
func clientCertificate(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "api server client CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
