package webhook_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/policy"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

// server serves the handler over TLS on loopback, as the API server calls
// it, with a snapshot holding tenant "project1" (namespace p1).
func server(t testing.TB, recoverPanic bool) (*httptest.Server, *http.Client) {
	t.Helper()
	view := policy.NewSnapshot()
	tn, err := policy.CompileTenant(&v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "project1"}, Spec: v1alpha1.TenantSpec{
		Namespaces: []string{"p1"},
		Images:     v1alpha1.ImagePolicy{AllowedRepositories: []string{"myacr.azurecr.io/project1/*", "docker.io/library/*"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	view.SetTenant(tn)
	view.SetNamespace("p1", map[string]string{v1alpha1.TenantLabel: "project1"})
	h := &webhook.Handler{Engine: policy.NewEngine(config.Default()), View: view}
	// The edge in front, as serve runs it.
	hook := webhook.NewEdge((&admission.Webhook{Handler: h}).WithRecoverPanic(recoverPanic), webhook.EdgeLimits{}, 5*time.Second, nil)

	certs, err := webhook.SelfSignedCertificates([]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certs.Cert, certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(hook)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certs.CACert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return srv, client
}

func review(kind metav1.GroupVersionKind, op admissionv1.Operation, ns string, obj runtime.Object) []byte {
	raw, _ := json.Marshal(obj)
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("uid-1"), Kind: kind, Operation: op, Namespace: ns, Name: "p",
			Object: runtime.RawExtension{Raw: raw},
		},
	}
	b, _ := json.Marshal(ar)
	return b
}

func post(t testing.TB, c *http.Client, url string, contentType string, body []byte) (int, *admissionv1.AdmissionReview) {
	t.Helper()
	resp, err := c.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	out := &admissionv1.AdmissionReview{}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v\n%s", err, data)
	}
	return resp.StatusCode, out
}

var podKind = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}

func pod(images ...string) *corev1.Pod {
	p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "p1"}}
	for i, img := range images {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprint("c", i), Image: img})
	}
	return p
}

func TestHandlerDecides(t *testing.T) {
	srv, c := server(t, true)
	_, ar := post(t, c, srv.URL, "application/json", review(podKind, admissionv1.Create, "p1", pod("nginx")))
	if !ar.Response.Allowed || ar.Response.UID != "uid-1" {
		t.Fatalf("allowed pod: %+v", ar.Response)
	}
	_, ar = post(t, c, srv.URL, "application/json", review(podKind, admissionv1.Create, "p1", pod("evil.io/x")))
	if ar.Response.Allowed || !strings.Contains(ar.Response.Result.Message, "tenantguard refused Pod p1/p") || ar.Response.Result.Code != http.StatusForbidden {
		t.Fatalf("foreign image: %+v", ar.Response.Result)
	}
}

func TestHandlerRefusesMalformedReviews(t *testing.T) {
	srv, c := server(t, false)
	garbage := review(podKind, admissionv1.Create, "p1", pod("nginx"))
	garbage = bytes.Replace(garbage, []byte(`"containers"`), []byte(`"containers":7,"x"`), 1)
	tests := []struct {
		name, contentType string
		body              []byte
		want              string
	}{
		{"empty body", "application/json", nil, "has no request.uid"},
		{"not JSON", "application/json", []byte("{{{"), "has no request.uid"},
		{"wrong content type", "text/plain", review(podKind, admissionv1.Create, "p1", pod("nginx")), "contentType"},
		{"no object", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE"}}`), "carries no object"},
		{"object is not a pod", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"apiVersion":"v1","kind":"Service"}}}`), "but the request says"},
		{"object garbage", "application/json", garbage, "spec.containers"},
		{"ingress request carrying another kind", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"networking.k8s.io","version":"v1","kind":"Ingress"},"operation":"CREATE","namespace":"p1","object":{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"x"}}}}`), "but its object is example.com/v1, Kind=Widget"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ar := post(t, c, srv.URL, tc.contentType, tc.body)
			if ar.Response == nil || ar.Response.Allowed {
				t.Fatalf("malformed review admitted: %+v", ar.Response)
			}
			if !strings.Contains(ar.Response.Result.Message, tc.want) {
				t.Errorf("message %q lacks %q", ar.Response.Result.Message, tc.want)
			}
		})
	}
}

func FuzzHandler(f *testing.F) {
	f.Add([]byte(review(podKind, admissionv1.Create, "p1", pod("nginx"))))
	f.Add([]byte(review(metav1.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}, admissionv1.Update, "p1", pod())))
	f.Add([]byte(`{"request":{"uid":"u","kind":{"version":"v1","kind":"Service"},"operation":"CREATE","object":{"apiVersion":"v1","kind":"Service","spec":{"type":"LoadBalancer"}}}}`))
	f.Add([]byte(`{"request":{"kind":{"version":"v1","kind":"Namespace"},"operation":"UPDATE","object":{"apiVersion":"v1","kind":"Namespace","metadata":{"labels":{"tenantguard.dev/tenant":"x"}}},"oldObject":{}}}`))
	f.Add([]byte(`{}`))
	srv, c := server(f, false)
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := c.Post(srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err) // a panic in the handler closes the connection
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var ar admissionv1.AdmissionReview
		if err := json.Unmarshal(data, &ar); err != nil || ar.Response == nil {
			t.Fatalf("not an AdmissionReview answer: %v %s", err, data)
		}
	})
}

// BenchmarkRoundTrip is one AdmissionReview for a 5-container Pod over TLS
// on loopback: encode, HTTP, decode, decide, encode, decode. It reports the
// median and the 99th percentile.
func BenchmarkRoundTrip(b *testing.B) {
	srv, c := server(b, true)
	body := review(podKind, admissionv1.Create, "p1", pod("nginx:1.27", "myacr.azurecr.io/project1/api:1", "myacr.azurecr.io/project1/worker:2", "busybox", "myacr.azurecr.io/project1/log:3"))
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		resp, err := c.Post(srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(start))
		if !bytes.Contains(data, []byte(`"allowed":true`)) {
			b.Fatalf("refused: %s", data)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
