package certrotation_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/internal/webhook"
)

// TestAPIServerCallsAcrossCARotation has the real API server call a
// webhook (failurePolicy Fail, a new TLS handshake on every call) whose
// certificate and caBundle a Rotator keeps, through a CA rotation:
// staged, promoted, retired. Every call must be admitted.
//
// The API server checks certificates against the real clock, so the fake
// clock starts at the real time with a CA that is already old, and moves
// one minute (the Overlap) per stage. The Overlap stands for the time the
// API server takes to see a new caBundle; here the test waits for that
// instead: a second webhook of the same configuration, served with a
// certificate of the staged CA, answers once the API server trusts it.
func TestAPIServerCallsAcrossCARotation(t *testing.T) {
	admin := adminClient(t)
	ns := namespace(t, admin)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls, probes := namespaceLabelled(t, admin, ns+"-calls"), namespaceLabelled(t, admin, ns+"-probes")

	clock := clocktesting.NewFakeClock(time.Now().Add(-70 * 24 * time.Hour))
	opts := options(guardClient(t, admin, ns, []string{ns}), ns, clock, ns)
	opts.Validity, opts.Overlap = 10*24*time.Hour, time.Minute // a CA of 100 days
	r := newRotator(t, opts)
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The rotator's webhook, and a probe whose certificate is set later.
	addr := serveAdmission(ctx, t, newWatcher(ctx, t, r.CertDir()).GetCertificate)
	var probeCert atomic.Pointer[tls.Certificate]
	probeAddr := serveAdmission(ctx, t, func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return probeCert.Load(), nil })
	registerWebhooks(t, admin, ns, map[string]string{calls: addr, probes: probeAddr})

	// Now: the serving certificate made 70 days ago has expired, and the
	// CA has less than a third of its life left.
	clock.SetTime(time.Now())
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	secret := readSecret(t, admin, ns)
	if _, staged := secret.Data["ca-next.key"]; !staged {
		t.Fatal("no CA staged")
	}
	waitServes(t, addr, r.CertDir())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	go func() {
		for ctx.Err() == nil {
			if err := createConfigMap(ctx, admin, calls); err != nil {
				if ctx.Err() == nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				continue
			}
			ok.Add(1)
		}
	}()
	waitCalls := func() {
		t.Helper()
		for target := ok.Load() + 3; ok.Load() < target && failed.Load() == 0; {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCalls()

	// Wait until the API server trusts the staged CA.
	probeCert.Store(issueFromStagedCA(t, secret, probes))
	for createConfigMap(ctx, admin, probes) != nil {
		time.Sleep(50 * time.Millisecond)
	}

	for _, stage := range []string{"promote", "retire"} {
		clock.Step(opts.Overlap)
		if err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		waitServes(t, addr, r.CertDir())
		waitCalls()
		cas, err := webhook.ParseCertificates(readSecret(t, admin, ns).Data["ca.crt"])
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"promote": 2, "retire": 1}[stage]; len(cas) != want {
			t.Fatalf("%s: %d CAs in the bundle, want %d", stage, len(cas), want)
		}
	}
	cancel()
	if bytesEqual(readSecret(t, admin, ns).Data["ca.key"], secret.Data["ca.key"]) {
		t.Fatal("the CA was not rotated")
	}
	t.Logf("%d calls admitted, %d failed", ok.Load(), failed.Load())
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d calls failed, the first: %v", n, firstErr.Load())
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func namespaceLabelled(t *testing.T, admin client.Client, name string) string {
	t.Helper()
	if err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"certrotation-test": name}}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func createConfigMap(ctx context.Context, c client.Client, ns string) error {
	return c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "c-", Namespace: ns}})
}

// registerWebhooks creates the configuration name, without a caBundle,
// with one webhook per namespace that calls the server at its address.
func registerWebhooks(t *testing.T, admin client.Client, name string, servers map[string]string) {
	t.Helper()
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for ns, addr := range servers {
		vwc.Webhooks = append(vwc.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name:         ns + ".tenantguard.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://" + addr + "/validate")},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"certrotation-test": ns}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](5),
		})
	}
	if err := admin.Create(context.Background(), vwc); err != nil {
		t.Fatal(err)
	}
}

// serveAdmission admits every review, over HTTPS on 127.0.0.1 with a new
// handshake on every call.
func serveAdmission(ctx context.Context, t *testing.T, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: getCert, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(req.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		review.Request = nil
		_ = json.NewEncoder(w).Encode(review)
	})}
	srv.SetKeepAlivesEnabled(false)
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// issueFromStagedCA signs a certificate for 127.0.0.1 with the Secret's
// staged CA.
func issueFromStagedCA(t *testing.T, secret *corev1.Secret, name string) *tls.Certificate {
	t.Helper()
	key, err := webhook.ParseKey(secret.Data["ca-next.key"])
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	cas, err := webhook.ParseCertificates(secret.Data["ca.crt"])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cas {
		if string(c.RawSubjectPublicKeyInfo) != string(pub) {
			continue
		}
		ca := webhook.CA{Cert: c, Key: key}
		certPEM, keyPEM, err := ca.Issue([]string{name}, []net.IP{net.ParseIP("127.0.0.1")}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &pair
	}
	t.Fatal(fmt.Errorf("the staged CA is not in ca.crt"))
	return nil
}
