package registry_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/tenantguard/tenantguard/internal/registry"
	"github.com/tenantguard/tenantguard/internal/registry/authn"
	"github.com/tenantguard/tenantguard/internal/registry/authz"
	"github.com/tenantguard/tenantguard/internal/registry/registrytest"
	"github.com/tenantguard/tenantguard/internal/registry/scope"
	"github.com/tenantguard/tenantguard/internal/registry/tenants"
	"github.com/tenantguard/tenantguard/internal/registry/token"
	"github.com/tenantguard/tenantguard/internal/registry/tokenserver"
)

// tokenAuthUpstream is a Distribution registry that, like ACR or Harbor,
// wants bearer tokens from its own token service. The token service is a
// second tenantguard token server whose only account is the gateway's.
type tokenAuthUpstream struct {
	registry *registrytest.Registry
	issuer   *token.Issuer
}

func startTokenAuthUpstream(t testing.TB) *tokenAuthUpstream {
	t.Helper()
	k, err := token.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := token.NewKeySet(k)
	if err != nil {
		t.Fatal(err)
	}
	const service, iss = "upstream.test", "upstream-token-service"
	issuer := &token.Issuer{Keys: func() *token.KeySet { return ks }, Issuer: iss, Audience: service}
	ts, err := tenants.ParseFile([]byte(`
apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: gateway}
spec:
  registry:
    repositories:
    - {pattern: project1/**, actions: [pull, push, delete]}
    - {pattern: project2/**, actions: [pull, push, delete]}
`))
	if err != nil {
		t.Fatal(err)
	}
	rules := authz.Compile(ts)
	h, _ := bcrypt.GenerateFromPassword([]byte("upstream-secret"), 10)
	robots, err := authn.ParseRobots([]byte(fmt.Sprintf("robots:\n- {name: gateway, tenant: gateway, passwordHash: %q}\n", h)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&tokenserver.Server{
		Service: service, Issuer: issuer, Rules: func() *authz.Rules { return rules },
		Authenticator: &authn.Chain{Robots: func() *authn.Robots { return robots }},
	}).Handler())
	t.Cleanup(srv.Close)
	jwks, _ := json.Marshal(ks.JWKS())
	reg := registrytest.Start(t, registrytest.Options{Token: &registrytest.TokenAuth{
		Realm: srv.URL + tokenserver.TokenPath, Service: service, Issuer: iss, JWKS: jwks,
	}})
	return &tokenAuthUpstream{registry: reg, issuer: issuer}
}

// TestUpstreamTokenExchange: the gateway logs in to a token-auth upstream
// with a user name and password, as it would to ACR, and tenants never see
// those credentials or the upstream's challenge.
func TestUpstreamTokenExchange(t *testing.T) {
	up := startTokenAuthUpstream(t)
	dir := t.TempDir()
	e := newEnv(t, envOptions{upstream: up.registry, mutate: func(cfg *registry.Config) {
		cfg.UpstreamUsername = "gateway"
		cfg.UpstreamPasswordFile = writeFile(t, dir, "password", "upstream-secret")
	}})
	// Direct access to the upstream without credentials is refused: it
	// really wants tokens.
	resp, err := http.Get(up.registry.URL.String() + "/v2/project1/app/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upstream without a token: %s", resp.Status)
	}
	img := randomImage(t)
	ref := e.ref(t, "project1/app:1")
	if err := remote.Write(ref, img, p1...); err != nil {
		t.Fatalf("push through the gateway: %v", err)
	}
	got, err := remote.Image(ref, p1...)
	if err != nil || digestOf(t, got) != digestOf(t, img) {
		t.Fatalf("pull through the gateway: %v", err)
	}
	// Immutability checks and the catalog use the gateway's own upstream
	// requests, which get their own tokens.
	if err := remote.Write(e.ref(t, "project1/app:v1"), img, p1...); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(e.ref(t, "project1/app:v1"), randomImage(t), p1...); err == nil {
		t.Error("immutable tag moved on a token-auth upstream")
	}
	tags, err := remote.List(e.repo(t, "project1/app"), p1...)
	if err != nil || !slices.Equal(tags, []string{"1", "v1"}) {
		t.Errorf("tags %v, %v", tags, err)
	}
	// The gateway's token never leaks: the client only ever talks to the
	// gateway's realm.
	resp, _ = e.do(t, http.MethodGet, "/v2/project1/app/tags/list", "", nil)
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, e.srv.Realm) {
		t.Errorf("challenge %q does not name the gateway's realm", ch)
	}
}

// TestUpstreamBearerTokenFile: a static upstream token (an ACR repository
// token, say) read from a file, re-read when the file changes.
func TestUpstreamBearerTokenFile(t *testing.T) {
	up := startTokenAuthUpstream(t)
	up.issuer.TTL = time.Hour
	issue := func(actions ...string) string {
		raw, _, err := up.issuer.Issue("robot:static", "gateway", nil, []scope.Scope{scope.Repository("project1/app", actions...)})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", issue("pull")+"\n")
	e := newEnv(t, envOptions{upstream: up.registry, mutate: func(cfg *registry.Config) {
		cfg.UpstreamTokenFile = tokenFile
	}})
	img := randomImage(t)
	ref := e.ref(t, "project1/app:1")
	// The upstream token only allows pull: the upstream refuses the push
	// and the gateway reports its own credentials as the problem (502), not
	// the tenant's.
	err := remote.Write(ref, img, p1...)
	if status, code := errorCode(err); status != http.StatusBadGateway || code != "UNAVAILABLE" {
		t.Fatalf("push with a pull-only upstream token: %v", err)
	}
	writeFile(t, dir, "token", issue("pull", "push")+"\n")
	// Make sure the modification time moves even on coarse clocks.
	future := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(filepath.Join(dir, "token"), future, future)
	if err := remote.Write(ref, img, p1...); err != nil {
		t.Fatalf("push after the token file changed: %v", err)
	}
	if _, err := remote.Image(ref, p1...); err != nil {
		t.Fatalf("pull: %v", err)
	}
}

// TestTLSAndOneListener: TLS on a single listener that serves both the
// registry and the token endpoint, and the health and metrics listener.
func TestTLSAndOneListener(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, pool := selfSigned(t)
	e := newEnv(t, envOptions{mutate: func(cfg *registry.Config) {
		cfg.TokenAddr = "" // the same listener as the registry
		cfg.TLSCertFile = writeFile(t, dir, "tls.crt", certPEM)
		cfg.TLSKeyFile = writeFile(t, dir, "tls.key", keyPEM)
	}})
	if !strings.HasPrefix(e.srv.RegistryURL, "https://") || e.srv.Realm != e.srv.RegistryURL+"/token" {
		t.Fatalf("registry %s realm %s", e.srv.RegistryURL, e.srv.Realm)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	opts := append([]remote.Option{remote.WithTransport(tr)}, p1...)
	ref, err := name.ParseReference(e.host + "/project1/app:tls")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, randomImage(t), opts...); err != nil {
		t.Fatalf("push over TLS: %v", err)
	}
	if _, err := remote.Image(ref, opts...); err != nil {
		t.Fatalf("pull over TLS: %v", err)
	}
	// Plain HTTP on the TLS listener does not work.
	if resp, err := http.Get("http://" + e.host + "/v2/"); err == nil && resp.StatusCode < 400 {
		t.Errorf("plain HTTP answered %s on the TLS listener", resp.Status)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(e.srv.MetricsURL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %s", p, resp.Status)
		}
		if p == "/metrics" && !strings.Contains(string(body), `tenantguard_registry_requests_total{code="201",listener="registry",method="PUT"}`) {
			t.Errorf("metrics lack the pushes:\n%s", body)
		}
	}
}

// TestReload: the tenants file, the robots and the signing keys are
// re-read when they change, without a restart.
func TestReload(t *testing.T) {
	e := newEnv(t, envOptions{})
	img := randomImage(t)
	if err := remote.Write(e.ref(t, "project1/app:1"), img, p1...); err != nil {
		t.Fatal(err)
	}
	oldToken := e.token(t, "p1-ci", "p1-secret", "repository:project1/app:pull")

	// project1 loses its rights: refused at once, even with a token issued before.
	writeFile(t, filepath.Dir(e.cfg.TenantsFile), filepath.Base(e.cfg.TenantsFile),
		strings.Replace(tenantsYAML, "pattern: project1/**", "pattern: project1/other", 1))
	eventually(t, func() bool {
		resp, _ := e.do(t, http.MethodGet, "/v2/project1/app/manifests/1", oldToken, nil)
		return resp.StatusCode == http.StatusForbidden
	})

	// Signing key rotation: a new key signs, the old key's tokens still verify.
	writeFile(t, filepath.Dir(e.cfg.TenantsFile), filepath.Base(e.cfg.TenantsFile), tenantsYAML)
	oldKID := e.signer(t).ID
	newKey := signingKeyDir(t)
	data, _ := os.ReadFile(filepath.Join(newKey, "2026-01.pem"))
	writeFile(t, e.keyDir, "2026-07.pem", string(data))
	eventually(t, func() bool {
		var raw string
		func() {
			defer func() { recover() }()
			raw = e.token(t, "p1-ci", "p1-secret", "repository:project1/app:pull")
		}()
		return raw != "" && kidOf(raw) != oldKID
	})
	resp, _ := e.do(t, http.MethodGet, "/v2/project1/app/manifests/1", oldToken, nil,
		"Accept", "application/vnd.docker.distribution.manifest.v2+json")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("token of the previous key after rotation: %s", resp.Status)
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func kidOf(raw string) string {
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	var head struct {
		Kid string `json:"kid"`
	}
	json.Unmarshal(b, &head)
	return head.Kid
}

// selfSigned makes a certificate for 127.0.0.1.
func selfSigned(t testing.TB) (certPEM, keyPEM string, pool *x509.CertPool) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})), pool
}
