package certrotation

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/tenantguard/tenantguard/internal/webhook"
)

// Keys of the Secret's data, and annotations with the times the rotation
// needs to remember.
const (
	keyCACert      = "ca.crt"      // the bundle the webhook configurations trust
	keyCAKey       = "ca.key"      // the key of the CA that signs
	keyNextCAKey   = "ca-next.key" // the key of a CA in the bundle, not yet signing
	keyCert        = "tls.crt"
	keyKey         = "tls.key"
	annCASince     = "tenantguard.dev/ca-signing-since"
	annNextCASince = "tenantguard.dev/ca-next-since"
)

// material is the Secret's content, parsed.
type material struct {
	// trust is every CA the API server is to trust, oldest first.
	trust []*x509.Certificate
	// ca signs serving certificates; nil when the Secret holds no usable
	// CA key (a Secret written by hand or by an older install).
	ca      *webhook.CA
	caSince time.Time
	// next is in trust but does not sign yet: the CA that will replace ca.
	next      *webhook.CA
	nextSince time.Time
	// certPEM and keyPEM are the serving certificate and key; leaf is
	// certPEM parsed, nil when they are unusable.
	certPEM, keyPEM []byte
	leaf            *x509.Certificate
}

// problems say what in a Secret could not be used, for the log.
type problems struct {
	trust   error // ca.crt or ca.key
	next    error // ca-next.key
	serving error // tls.crt or tls.key
}

// parse reads a Secret's data and annotations. It never fails: what is
// unusable is reported in problems and left out of the material, for
// decide to replace.
func parse(data map[string][]byte, annotations map[string]string) (material, problems) {
	var (
		m    material
		prob problems
		err  error
	)
	if m.trust, err = webhook.ParseCertificates(data[keyCACert]); err != nil {
		m.trust = nil
		prob.trust = fmt.Errorf("%s: %w", keyCACert, err)
	}
	if m.trust != nil {
		if m.ca, err = caFor(m.trust, data[keyCAKey]); err != nil {
			prob.trust = fmt.Errorf("%s: %w", keyCAKey, err)
		} else {
			m.caSince = timeAnnotation(annotations, annCASince)
		}
		if _, staged := data[keyNextCAKey]; staged {
			since := timeAnnotation(annotations, annNextCASince)
			switch m.next, err = caFor(m.trust, data[keyNextCAKey]); {
			case err != nil:
				m.next, prob.next = nil, fmt.Errorf("%s: %w", keyNextCAKey, err)
			case since.IsZero():
				m.next, prob.next = nil, fmt.Errorf("annotation %s is missing or not a time", annNextCASince)
			case m.ca != nil && m.next.Cert.Equal(m.ca.Cert):
				m.next, prob.next = nil, fmt.Errorf("%s is the signing CA's key", keyNextCAKey)
			default:
				m.nextSince = since
			}
		}
	}
	m.certPEM, m.keyPEM = data[keyCert], data[keyKey]
	pair, err := tls.X509KeyPair(m.certPEM, m.keyPEM)
	if err != nil {
		prob.serving = fmt.Errorf("%s and %s: %w", keyCert, keyKey, err)
		return m, prob
	}
	if m.leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
		m.leaf, prob.serving = nil, fmt.Errorf("%s: %w", keyCert, err)
	}
	return m, prob
}

// caFor pairs a PEM key with the certificate of trust that holds its
// public key.
func caFor(trust []*x509.Certificate, keyPEM []byte) (*webhook.CA, error) {
	if len(keyPEM) == 0 {
		return nil, errors.New("missing")
	}
	key, err := webhook.ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	for _, c := range trust {
		if c.IsCA && bytes.Equal(c.RawSubjectPublicKeyInfo, pub) {
			return &webhook.CA{Cert: c, Key: key}, nil
		}
	}
	return nil, fmt.Errorf("no CA certificate in %s holds its public key", keyCACert)
}

func timeAnnotation(annotations map[string]string, key string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, annotations[key])
	if err != nil {
		return time.Time{}
	}
	return t
}

// encode is the inverse of parse.
func (m material) encode() (map[string][]byte, map[string]string, error) {
	data := map[string][]byte{
		keyCACert: webhook.EncodeCertificates(m.trust...),
		keyCert:   m.certPEM,
		keyKey:    m.keyPEM,
	}
	ann := map[string]string{}
	for _, k := range []struct {
		ca    *webhook.CA
		key   string
		ann   string
		since time.Time
	}{{m.ca, keyCAKey, annCASince, m.caSince}, {m.next, keyNextCAKey, annNextCASince, m.nextSince}} {
		if k.ca == nil {
			continue
		}
		pem, err := webhook.EncodeKey(k.ca.Key)
		if err != nil {
			return nil, nil, err
		}
		data[k.key] = pem
		ann[k.ann] = k.since.UTC().Format(time.RFC3339Nano)
	}
	return data, ann, nil
}

func containsDER(certs []*x509.Certificate, der []byte) bool {
	for _, c := range certs {
		if bytes.Equal(c.Raw, der) {
			return true
		}
	}
	return false
}

// setServing sets the serving certificate and key, and leaf from them.
func (m *material) setServing(certPEM, keyPEM []byte) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("new serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("new serving certificate: %w", err)
	}
	m.certPEM, m.keyPEM, m.leaf = certPEM, keyPEM, leaf
	return nil
}
