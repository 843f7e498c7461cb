package certrotation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Defaults of Options.
const (
	DefaultValidity        = 90 * 24 * time.Hour
	DefaultRefreshFraction = 1.0 / 3
)

// Options configure a Rotator.
type Options struct {
	// Client reads from and writes to the API server (not a cache: the
	// rotation relies on fresh resourceVersions). It needs get, create
	// and update on the Secret, and get and update on the webhook
	// configurations.
	Client client.Client
	// Namespace and SecretName name the Secret that holds the CA and the
	// serving certificate.
	Namespace, SecretName string
	// DNSNames and IPs are the serving certificate's names; see
	// ServiceDNSNames.
	DNSNames []string
	IPs      []net.IP
	// CertDir receives tls.crt and tls.key.
	CertDir string
	// WebhookConfigurations are the names of the Validating and Mutating
	// webhook configurations whose caBundle is kept equal to the Secret's
	// ca.crt.
	WebhookConfigurations []string
	// Validity of a serving certificate (default DefaultValidity); a CA
	// is valid ten times as long.
	Validity time.Duration
	// RefreshFraction of a certificate's lifetime left at which it is
	// replaced (default DefaultRefreshFraction).
	RefreshFraction float64
	// Interval between reads of the Secret (default Validity/10, at most
	// a minute).
	Interval time.Duration
	// Overlap is how long a new CA is trusted before it signs, and an old
	// one after it stopped (default Validity/10, at least Interval). It
	// must exceed the time the API server takes to see a new caBundle and
	// every replica to read the Secret.
	Overlap time.Duration
	// Clock is the time source (default the real clock).
	Clock clock.WithTicker
}

// ServiceDNSNames are the names under which the API server reaches the
// Service name in namespace.
func ServiceDNSNames(name, namespace string) []string {
	svc := name + "." + namespace + ".svc"
	return []string{svc, svc + ".cluster.local", name + "." + namespace}
}

// Rotator keeps the webhook's certificates in a Secret, in CertDir and in
// the webhook configurations' caBundle. It is a manager.Runnable for
// every replica.
type Rotator struct {
	opts     Options
	schedule schedule

	mu sync.Mutex
	// served is the Secret's serving certificate and key last written to
	// CertDir.
	servedCert, servedKey []byte
}

// New checks opts and returns a Rotator.
func New(opts Options) (*Rotator, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("certificate rotation: no API server client")
	case opts.Namespace == "" || opts.SecretName == "":
		return nil, errors.New("certificate rotation: the Secret's namespace and name are required")
	case opts.CertDir == "":
		return nil, errors.New("certificate rotation: no certificate directory")
	case len(opts.DNSNames) == 0 && len(opts.IPs) == 0:
		return nil, errors.New("certificate rotation: the serving certificate needs at least one DNS name or IP address")
	case opts.Validity < 0 || opts.Interval < 0 || opts.Overlap < 0:
		return nil, errors.New("certificate rotation: durations must not be negative")
	case opts.RefreshFraction < 0 || opts.RefreshFraction >= 1:
		return nil, fmt.Errorf("certificate rotation: refresh fraction %v is outside [0, 1)", opts.RefreshFraction)
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	if opts.RefreshFraction == 0 {
		opts.RefreshFraction = DefaultRefreshFraction
	}
	if opts.Interval == 0 {
		opts.Interval = min(opts.Validity/10, time.Minute)
	}
	if opts.Overlap == 0 {
		opts.Overlap = max(opts.Validity/10, opts.Interval)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Rotator{opts: opts, schedule: schedule{
		validity:   opts.Validity,
		caValidity: 10 * opts.Validity,
		fraction:   opts.RefreshFraction,
		overlap:    opts.Overlap,
		backdate:   min(opts.Validity/10, 5*time.Minute),
		dnsNames:   opts.DNSNames,
		ips:        opts.IPs,
	}}, nil
}

// NeedLeaderElection is false: every replica serves, so every replica
// needs the files.
func (r *Rotator) NeedLeaderElection() bool { return false }

// Start runs Sync every Interval until ctx ends. A failed pass is logged
// and retried on the next tick. Call Sync once before the webhook server
// starts, so that it finds the files.
func (r *Rotator) Start(ctx context.Context) error {
	ticker := r.opts.Clock.NewTicker(r.opts.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
		if err := r.Sync(ctx); err != nil {
			log.FromContext(ctx).Error(err, "webhook certificate rotation failed; retrying", "interval", r.opts.Interval)
		}
	}
}

// Sync makes one pass: it reads the Secret (creating it if missing),
// replaces what is due, writes the webhook configurations' caBundle and
// then the files. A lost race with another replica is read back, not
// fought.
func (r *Rotator) Sync(ctx context.Context) error {
	logger := log.FromContext(ctx).WithValues("secret", r.opts.Namespace+"/"+r.opts.SecretName)
	key := client.ObjectKey{Namespace: r.opts.Namespace, Name: r.opts.SecretName}
	for range 5 {
		secret := &corev1.Secret{}
		err := r.opts.Client.Get(ctx, key, secret)
		missing := apierrors.IsNotFound(err)
		if err != nil && !missing {
			return fmt.Errorf("read Secret %s: %w", key, err)
		}
		m, prob := parse(secret.Data, secret.Annotations)
		propagated := false
		if m.next != nil {
			propagated = r.trusted(ctx, m.next.Cert.Raw)
		}
		now := r.opts.Clock.Now()
		m, why, err := r.schedule.decide(now, m, prob, propagated)
		if err != nil {
			return fmt.Errorf("renew webhook certificates: %w", err)
		}
		if len(why) > 0 {
			data, ann, err := m.encode()
			if err != nil {
				return err
			}
			if missing {
				secret = &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
					Type:       corev1.SecretTypeTLS,
				}
				why = []string{"created the Secret with a new CA and serving certificate"}
			}
			secret.Data = data
			if secret.Annotations == nil {
				secret.Annotations = map[string]string{}
			}
			delete(secret.Annotations, annCASince)
			delete(secret.Annotations, annNextCASince)
			for k, v := range ann {
				secret.Annotations[k] = v
			}
			if missing {
				err = r.opts.Client.Create(ctx, secret)
			} else {
				// The resourceVersion read above makes this update fail
				// if another replica wrote first.
				err = r.opts.Client.Update(ctx, secret)
			}
			if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
				logger.V(1).Info("another replica changed the Secret first; reading it again")
				continue
			}
			if err != nil {
				return fmt.Errorf("write Secret %s: %w", key, err)
			}
			logger.Info("webhook certificates changed: "+strings.Join(why, "; "), "validUntil", m.leafNotAfter())
		}
		r.publishBundle(ctx, secret.Data[keyCACert])
		return r.writeFiles(secret.Data[keyCert], secret.Data[keyKey])
	}
	return fmt.Errorf("the Secret %s kept changing under this replica; retrying later", key)
}

// Ready is a readiness check: it fails until CertDir holds the serving
// certificate and key last read from the Secret.
func (r *Rotator) Ready(*http.Request) error {
	r.mu.Lock()
	cert, key := r.servedCert, r.servedKey
	r.mu.Unlock()
	if cert == nil {
		return fmt.Errorf("no webhook certificate read from Secret %s/%s yet", r.opts.Namespace, r.opts.SecretName)
	}
	for name, want := range map[string][]byte{keyCert: cert, keyKey: key} {
		got, err := os.ReadFile(filepath.Join(r.opts.CertDir, name))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s in %s differs from Secret %s/%s", name, r.opts.CertDir, r.opts.Namespace, r.opts.SecretName)
		}
	}
	return nil
}

// writeFiles writes tls.crt and tls.key when they differ from the files,
// each by a rename so that a reader never sees half a file.
func (r *Rotator) writeFiles(cert, key []byte) error {
	if err := os.MkdirAll(r.opts.CertDir, 0o700); err != nil {
		return fmt.Errorf("certificate directory: %w", err)
	}
	// The key first: a reader that sees the new key with the old
	// certificate finds a mismatch and keeps what it serves, until the
	// certificate follows.
	for _, f := range []struct {
		name string
		data []byte
	}{{keyKey, key}, {keyCert, cert}} {
		if err := writeAtomic(filepath.Join(r.opts.CertDir, f.name), f.data); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.servedCert, r.servedKey = cert, key
	r.mu.Unlock()
	return nil
}

func writeAtomic(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// leafNotAfter is for the log.
func (m material) leafNotAfter() string {
	if m.leaf != nil {
		return m.leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	return ""
}

// CertDir is the directory the Rotator writes tls.crt and tls.key into.
func (r *Rotator) CertDir() string { return r.opts.CertDir }
