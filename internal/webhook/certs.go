package webhook

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certificates are a CA and a serving certificate signed by it, PEM encoded.
type Certificates struct {
	CACert, Cert, Key []byte
}

// SelfSignedCertificates creates a CA and a serving certificate for the
// given DNS names and IP addresses, valid for validFor. It is for `dev`,
// tests and first installs; production may mount its own certificates.
func SelfSignedCertificates(dnsNames []string, ips []net.IP, validFor time.Duration) (Certificates, error) {
	now := time.Now()
	ca, err := NewCA(now.Add(-time.Hour), now.Add(validFor))
	if err != nil {
		return Certificates{}, err
	}
	cert, key, err := ca.Issue(dnsNames, ips, now.Add(-time.Hour), now.Add(validFor))
	if err != nil {
		return Certificates{}, err
	}
	return Certificates{CACert: ca.CertPEM(), Cert: cert, Key: key}, nil
}

// CA is a certificate authority that signs serving certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA creates a self-signed CA with a new P-256 key, valid from
// notBefore to notAfter.
func NewCA(notBefore, notAfter time.Time) (CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return CA{}, fmt.Errorf("generate CA key: %w", err)
	}
	template := &x509.Certificate{
		SerialNumber: serial(),
		// The serial in the name tells CAs apart in a bundle that holds
		// an old and a new one.
		Subject:               pkix.Name{CommonName: "tenantguard webhook CA", SerialNumber: fmt.Sprintf("%x", notBefore.UnixNano())},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return CA{}, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return CA{}, err
	}
	return CA{Cert: cert, Key: key}, nil
}

// Issue creates a serving certificate for dnsNames and ips, signed by
// ca and valid from notBefore to notAfter, and returns it and its new key,
// PEM encoded.
func (ca CA) Issue(dnsNames []string, ips []net.IP, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate serving key: %w", err)
	}
	cn := "tenantguard"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	template := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("create serving certificate: %w", err)
	}
	keyPEM, err = EncodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// CertPEM is the CA's certificate, PEM encoded.
func (ca CA) CertPEM() []byte { return EncodeCertificates(ca.Cert) }

// EncodeCertificates PEM encodes certificates, in order, as a CA bundle.
func EncodeCertificates(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// EncodeKey PEM encodes an ECDSA key ("EC PRIVATE KEY") or any other key
// as PKCS #8 ("PRIVATE KEY").
func EncodeKey(key crypto.Signer) ([]byte, error) {
	if ec, ok := key.(*ecdsa.PrivateKey); ok {
		der, err := x509.MarshalECPrivateKey(ec)
		if err != nil {
			return nil, fmt.Errorf("encode key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertificates parses a PEM bundle of one or more certificates.
// Blocks of other types are an error: a bundle is certificates only.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, not CERTIFICATE", len(certs)+1, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	if len(bytes.TrimSpace(data)) > 0 {
		return nil, errors.New("text after the last PEM certificate")
	}
	return certs, nil
}

// ParseKey parses one PEM private key: EC, PKCS #1 RSA or PKCS #8.
func ParseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", key)
	}
	return signer, nil
}

// WriteFiles writes tls.crt, tls.key and ca.crt into dir (the layout of a
// kubernetes.io/tls Secret mounted as a volume).
func (c Certificates) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"tls.crt": c.Cert, "tls.key": c.Key, "ca.crt": c.CACert} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// ReadCertificates reads tls.crt, tls.key and ca.crt from dir, as
// WriteFiles writes them.
func ReadCertificates(dir string) (Certificates, error) {
	var c Certificates
	for name, dst := range map[string]*[]byte{"tls.crt": &c.Cert, "tls.key": &c.Key, "ca.crt": &c.CACert} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return Certificates{}, err
		}
		*dst = data
	}
	return c, nil
}
