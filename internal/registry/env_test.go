package registry_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/crypto/bcrypt"

	"github.com/tenantguard/tenantguard/internal/registry"
	"github.com/tenantguard/tenantguard/internal/registry/registrytest"
	"github.com/tenantguard/tenantguard/internal/registry/token"
)

// The tenants of the tests: project1 and project2 each own their
// repositories; project1 protects v* and release-* tags.
const tenantsYAML = `
apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: project1}
spec:
  registry:
    repositories:
    - pattern: project1/**
      actions: [pull, push, delete]
    immutableTags: ["v*", "release-*"]
---
apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: project2}
spec:
  registry:
    repositories:
    - pattern: project2/**
      actions: [pull, push, delete]
---
apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: conformance}
spec:
  registry:
    repositories:
    - pattern: conformance/**
      actions: [pull, push, delete]
`

// Robot accounts: user -> tenant, password and an optional action limit.
var robots = []struct{ name, tenant, password, actions string }{
	{"p1-ci", "project1", "p1-secret", ""},
	{"p1-puller", "project1", "p1-pull-secret", "[pull]"},
	{"p2-ci", "project2", "p2-secret", ""},
	{"conformance", "conformance", "conformance-secret", ""},
}

// env is a gateway in front of a real Distribution registry.
type env struct {
	upstream *registrytest.Registry
	srv      *registry.Server
	host     string // the gateway's host:port
	keyDir   string
	audit    *syncBuffer
	cfg      registry.Config
}

type envOptions struct {
	// upstream overrides the default upstream (htpasswd, user "gateway").
	upstream *registrytest.Registry
	// mutate adjusts the configuration.
	mutate func(*registry.Config)
}

var (
	robotsOnce sync.Once
	robotsText string
)

// robotsFile writes the robot accounts (bcrypt hashed once per test binary).
func robotsFile(t testing.TB, dir string) string {
	robotsOnce.Do(func() {
		var b strings.Builder
		b.WriteString("robots:\n")
		for _, r := range robots {
			h, err := bcrypt.GenerateFromPassword([]byte(r.password), 10)
			if err != nil {
				panic(err)
			}
			fmt.Fprintf(&b, "- name: %s\n  tenant: %s\n  passwordHash: %q\n", r.name, r.tenant, h)
			if r.actions != "" {
				fmt.Fprintf(&b, "  actions: %s\n", r.actions)
			}
		}
		robotsText = b.String()
	})
	return writeFile(t, dir, "robots.yaml", robotsText)
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// signingKeyDir writes a fresh ES256 key.
func signingKeyDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "2026-01.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	return dir
}

func newEnv(t testing.TB, opts envOptions) *env {
	t.Helper()
	cfg, up := envConfig(t, opts.upstream)
	audit := &syncBuffer{}
	cfg.Audit = slog.New(slog.NewJSONHandler(audit, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.Log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if opts.mutate != nil {
		opts.mutate(&cfg)
	}
	srv, err := registry.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	u, _ := url.Parse(srv.RegistryURL)
	return &env{upstream: up, srv: srv, host: u.Host, keyDir: cfg.SigningKeyDir, audit: audit, cfg: cfg}
}

// envConfig writes the files of a gateway configuration; without an
// upstream it starts one that wants basic auth from user "gateway".
func envConfig(t testing.TB, up *registrytest.Registry) (registry.Config, *registrytest.Registry) {
	t.Helper()
	dir := t.TempDir()
	cfg := registry.Config{
		Addr:           "127.0.0.1:0",
		TokenAddr:      "127.0.0.1:0",
		MetricsAddr:    "127.0.0.1:0",
		TenantsFile:    writeFile(t, dir, "tenants.yaml", tenantsYAML),
		RobotsFile:     robotsFile(t, dir),
		SigningKeyDir:  signingKeyDir(t),
		Service:        "registry.test",
		ReloadInterval: 100 * time.Millisecond,
	}
	if up == nil {
		up = registrytest.Start(t, registrytest.Options{Htpasswd: map[string]string{"gateway": "upstream-secret"}})
		cfg.UpstreamUsername = "gateway"
		cfg.UpstreamPasswordFile = writeFile(t, dir, "upstream-password", "upstream-secret\n")
	}
	cfg.Upstream = up.URL.String()
	return cfg, up
}

// ref parses a reference on the gateway ("project1/app:v1").
func (e *env) ref(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(e.host+"/"+s, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) repo(t testing.TB, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(e.host+"/"+s, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// as returns the remote options of a robot.
func as(user, password string) []remote.Option {
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: user, Password: password}), remote.WithContext(context.Background())}
}

var (
	p1       = as("p1-ci", "p1-secret")
	p1Puller = as("p1-puller", "p1-pull-secret")
	p2       = as("p2-ci", "p2-secret")
)

// token fetches a token from the token endpoint, as a client would.
func (e *env) token(t testing.TB, user, password string, scopes ...string) string {
	t.Helper()
	q := url.Values{"service": {e.cfg.Service}, "scope": scopes}
	req, _ := http.NewRequest(http.MethodGet, e.srv.Realm+"?"+q.Encode(), nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("token for %s: %s %s", user, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Token
}

// do sends a raw request to the gateway with a bearer token ("" for none).
func (e *env) do(t testing.TB, method, path, bearer string, body io.Reader, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+e.host+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// signer returns the gateway's signing key, to forge tokens in tests.
func (e *env) signer(t testing.TB) *token.Key {
	t.Helper()
	ks, err := token.LoadDir(e.keyDir)
	if err != nil {
		t.Fatal(err)
	}
	return ks.Signer()
}

// errorCode returns the HTTP status and first distribution error code of
// a go-containerregistry error.
func errorCode(err error) (int, string) {
	var te *transport.Error
	if !errors.As(err, &te) {
		return 0, ""
	}
	if len(te.Errors) == 0 {
		return te.StatusCode, ""
	}
	return te.StatusCode, string(te.Errors[0].Code)
}

// specError decodes a distribution-spec error body.
func specError(t testing.TB, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not a distribution-spec error body: %q (%v)", body, err)
	}
	return e.Errors[0].Code, e.Errors[0].Message
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the audit lines decoded.
func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
