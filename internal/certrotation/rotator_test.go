package certrotation_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/tenantguard/tenantguard/internal/certrotation"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

const secretName = "webhook-tls"

func options(c client.Client, ns string, clock *clocktesting.FakeClock, configurations ...string) certrotation.Options {
	return certrotation.Options{
		Client: c, Namespace: ns, SecretName: secretName,
		DNSNames: certrotation.ServiceDNSNames("tenantguard", ns),
		IPs:      []net.IP{net.ParseIP("127.0.0.1")},
		CertDir:  filepath.Join(os.TempDir(), "unset"), // set by each test
		Validity: time.Hour, WebhookConfigurations: configurations,
		Clock: clock,
	}
}

func newRotator(t *testing.T, opts certrotation.Options) *certrotation.Rotator {
	t.Helper()
	opts.CertDir = t.TempDir()
	r, err := certrotation.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readSecret(t *testing.T, c client.Client, ns string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: secretName}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// certDir is where a Rotator writes; Ready reports on it.
func servedFile(t *testing.T, r *certrotation.Rotator, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(r.CertDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// barrier holds the first call of each of two replicas until both have
// made it, so that they race for real, and records what the API server
// answered them.
type barrier struct {
	mu      sync.Mutex
	armed   bool
	arrived chan struct{}
	release chan struct{}
	errs    []error
}

func newBarrier() *barrier {
	return &barrier{arrived: make(chan struct{}, 2), release: make(chan struct{})}
}

func (b *barrier) arm() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed, b.errs = true, nil
	b.arrived, b.release = make(chan struct{}, 2), make(chan struct{})
}

// releaseAll lets the held replicas through.
func (b *barrier) releaseAll() {
	b.mu.Lock()
	b.armed = false
	close(b.release)
	b.mu.Unlock()
}

func (b *barrier) call(secret bool, fn func() error) error {
	b.mu.Lock()
	held := b.armed && secret
	arrived, release := b.arrived, b.release
	b.mu.Unlock()
	if held {
		arrived <- struct{}{}
		<-release
	}
	err := fn()
	if held {
		b.mu.Lock()
		b.errs = append(b.errs, err)
		b.mu.Unlock()
	}
	return err
}

func (b *barrier) client(c client.WithWatch) client.Client {
	isSecret := func(obj client.Object) bool { _, ok := obj.(*corev1.Secret); return ok }
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return b.call(isSecret(obj), func() error { return c.Create(ctx, obj, opts...) })
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return b.call(isSecret(obj), func() error { return c.Update(ctx, obj, opts...) })
		},
	})
}

// TestReplicasConvergeOnOneSecret races two replicas, with the guard's
// RBAC, to create the Secret and then to renew its certificate: one wins
// each race, the other reads the winner's certificate back, and both
// serve the same files.
func TestReplicasConvergeOnOneSecret(t *testing.T) {
	admin := adminClient(t)
	ns := namespace(t, admin)
	guard := guardClient(t, admin, ns, []string{"none"})
	clock := clocktesting.NewFakeClock(time.Now())
	b := newBarrier()
	wrapped := b.client(guard)
	a, c := newRotator(t, options(wrapped, ns, clock)), newRotator(t, options(wrapped, ns, clock))
	ctx := context.Background()

	both := func(wantLoser func(error) bool, what string) {
		t.Helper()
		b.arm()
		errs := make(chan error, 2)
		for _, r := range []*certrotation.Rotator{a, c} {
			go func() { errs <- r.Sync(ctx) }()
		}
		// Both must reach the write; a pass that ends first never raced.
		for range 2 {
			select {
			case <-b.arrived:
			case err := <-errs:
				t.Fatalf("%s: a replica finished without writing the Secret: %v", what, err)
			}
		}
		b.releaseAll()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		won, lost := 0, 0
		for _, err := range b.errs {
			switch {
			case err == nil:
				won++
			case wantLoser(err):
				lost++
			default:
				t.Fatalf("%s: %v", what, err)
			}
		}
		if won != 1 || lost != 1 {
			t.Fatalf("%s: %d replicas won and %d lost, want one each: %v", what, won, lost, b.errs)
		}
		secret := readSecret(t, admin, ns)
		for _, r := range []*certrotation.Rotator{a, c} {
			if got := servedFile(t, r, "tls.crt"); !bytes.Equal(got, secret.Data["tls.crt"]) {
				t.Fatalf("%s: a replica serves another certificate than the Secret's", what)
			}
			if err := r.Ready(nil); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	both(apierrors.IsAlreadyExists, "create")
	first := readSecret(t, admin, ns).Data["tls.crt"]
	clock.Step(45 * time.Minute) // less than a third of the hour left
	both(apierrors.IsConflict, "renew")
	if bytes.Equal(first, readSecret(t, admin, ns).Data["tls.crt"]) {
		t.Fatal("the certificate was not renewed")
	}
}

// TestCABundleWrittenIntoWebhookConfigurations checks that every webhook
// of the named configurations, of both kinds, trusts the Secret's CA, that
// others are left alone, and that a missing one is only logged.
func TestCABundleWrittenIntoWebhookConfigurations(t *testing.T) {
	admin := adminClient(t)
	ns := namespace(t, admin)
	v, m, other, missing := ns+"-v", ns+"-m", ns+"-other", ns+"-missing"
	validatingConfiguration(t, admin, v, 2)
	mutatingConfiguration(t, admin, m)
	validatingConfiguration(t, admin, other, 1)
	names := []string{v, m, missing}
	r := newRotator(t, options(guardClient(t, admin, ns, names), ns, clocktesting.NewFakeClock(time.Now()), names...))
	var l logs
	ctx := l.context(context.Background())
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ca := readSecret(t, admin, ns).Data["ca.crt"]
	bundles := func(name string) [][]byte {
		var out [][]byte
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := admin.Get(ctx, client.ObjectKey{Name: name}, vwc); err == nil {
			for _, w := range vwc.Webhooks {
				out = append(out, w.ClientConfig.CABundle)
			}
			return out
		}
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := admin.Get(ctx, client.ObjectKey{Name: name}, mwc); err != nil {
			t.Fatal(err)
		}
		for _, w := range mwc.Webhooks {
			out = append(out, w.ClientConfig.CABundle)
		}
		return out
	}
	checkAll := func() {
		t.Helper()
		for _, name := range []string{v, m} {
			got := bundles(name)
			for i, b := range got {
				if !bytes.Equal(b, ca) {
					t.Fatalf("%s webhook %d: caBundle is not the Secret's ca.crt", name, i)
				}
			}
			if len(got) == 0 {
				t.Fatalf("%s: no webhooks", name)
			}
		}
	}
	checkAll()
	if got := bundles(other); len(got[0]) != 0 {
		t.Fatal("a configuration that is not named was changed")
	}
	if l.find("no validating or mutating webhook configuration", missing) == "" {
		t.Fatalf("the missing configuration was not logged:\n%s", &l)
	}

	// A caBundle changed by hand is put back on the next pass.
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := admin.Get(ctx, client.ObjectKey{Name: v}, vwc); err != nil {
		t.Fatal(err)
	}
	other2, err := webhook.SelfSignedCertificates([]string{"x"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	vwc.Webhooks[1].ClientConfig.CABundle = other2.CACert
	if err := admin.Update(ctx, vwc); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	checkAll()
}

// TestStartFollowsTheSecret runs two replicas' Start loops on a fake
// clock: when one renews the certificate, the other writes it into its
// directory on its next tick.
func TestStartFollowsTheSecret(t *testing.T) {
	admin := adminClient(t)
	ns := namespace(t, admin)
	guard := guardClient(t, admin, ns, []string{"none"})
	clock := clocktesting.NewFakeClock(time.Now())
	renewer := newRotator(t, options(guard, ns, clock))
	follower := newRotator(t, options(guard, ns, clock))
	ctx, cancel := context.WithCancel(context.Background())
	if err := follower.Ready(nil); err == nil {
		t.Fatal("ready before any certificate was written")
	}
	for _, r := range []*certrotation.Rotator{renewer, follower} {
		if err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clock.Step(45 * time.Minute)
	if err := renewer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	renewed := readSecret(t, admin, ns).Data["tls.crt"]
	if bytes.Equal(renewed, servedFile(t, follower, "tls.crt")) {
		t.Fatal("the certificate was not renewed")
	}
	// Started only now: a follower running while the clock jumps could
	// renew the certificate itself, and there would be nothing to follow.
	done := make(chan error, 1)
	go func() { done <- follower.Start(ctx) }()
	for !bytes.Equal(renewed, servedFile(t, follower, "tls.crt")) {
		if clock.HasWaiters() {
			clock.Step(time.Minute) // the follower's interval (validity/10, at most a minute)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := follower.Ready(nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Start returned %v when its context ended", err)
	}
}

// TestCorruptedSecretIsRepaired breaks the Secret in the ways a hand edit
// can, and checks that each is repaired with a log line that says what
// was wrong, and that the repaired Secret is whole.
func TestCorruptedSecretIsRepaired(t *testing.T) {
	admin := adminClient(t)
	ns := namespace(t, admin)
	conf := ns + "-v"
	validatingConfiguration(t, admin, conf, 1)
	r := newRotator(t, options(guardClient(t, admin, ns, []string{conf}), ns, clocktesting.NewFakeClock(time.Now()), conf))
	var l logs
	ctx := l.context(context.Background())
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		key    string
		value  []byte
		log    string
		sameCA bool
	}{
		{"garbage tls.crt", "tls.crt", []byte("garbage"), "the serving certificate is unusable (tls.crt and tls.key", true},
		{"empty tls.key", "tls.key", []byte{}, "the serving certificate is unusable (tls.crt and tls.key", true},
		{"garbage ca.crt", "ca.crt", []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), "ca.crt", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := readSecret(t, admin, ns)
			broken := before.DeepCopy()
			broken.Data[tc.key] = tc.value
			if err := admin.Update(ctx, broken); err != nil {
				t.Fatal(err)
			}
			if err := r.Sync(ctx); err != nil {
				t.Fatalf("a broken Secret must be repaired, not fail the pass: %v", err)
			}
			if l.find("webhook certificates changed", tc.log) == "" {
				t.Fatalf("no log line with %q:\n%s", tc.log, &l)
			}
			after := readSecret(t, admin, ns)
			if bytes.Equal(after.Data[tc.key], tc.value) {
				t.Fatalf("%s was not replaced", tc.key)
			}
			if got := bytes.Equal(after.Data["ca.crt"], before.Data["ca.crt"]); got != tc.sameCA {
				t.Fatalf("CA kept: %v, want %v", got, tc.sameCA)
			}
			cas, err := webhook.ParseCertificates(after.Data["ca.crt"])
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := webhook.ParseCertificates(servedFile(t, r, "tls.crt"))
			if err != nil {
				t.Fatal(err)
			}
			if leaf[0].CheckSignatureFrom(cas[len(cas)-1]) != nil {
				t.Fatal("the served certificate is not signed by the Secret's CA")
			}
			if err := r.Ready(nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}
