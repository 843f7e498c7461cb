package registry_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tenantguard/tenantguard/internal/registry/registrytest"
)

// redirectingUpstream is a real HTTP server in front of a real Distribution
// registry that answers blob GETs with a redirect to the registry itself,
// as ACR or an S3-backed Distribution redirect them to storage. Everything
// else it proxies. It counts the redirects and the blob bytes it served.
type redirectingUpstream struct {
	url, storage *url.URL
	redirects    atomic.Int64
	blobBytes    atomic.Int64
}

func startRedirectingUpstream(t *testing.T) *redirectingUpstream {
	t.Helper()
	storage := registrytest.Start(t, registrytest.Options{})
	ru := &redirectingUpstream{storage: storage.URL}
	proxy := httputil.NewSingleHostReverseProxy(storage.URL)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && strings.Contains(resp.Request.URL.Path, "/blobs/sha256:") {
			ru.blobBytes.Add(max(resp.ContentLength, 0))
		}
		return nil
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			ru.redirects.Add(1)
			http.Redirect(w, r, storage.URL.String()+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ru.url = &url.URL{Scheme: "http", Host: ln.Addr().String()}
	return ru
}

// TestBlobRedirectPassesThrough: when the upstream redirects blob GETs to
// storage, the gateway passes the redirect to the client untouched, the
// client fetches the bytes from storage, and the blob never flows through
// the gateway.
func TestBlobRedirectPassesThrough(t *testing.T) {
	up := startRedirectingUpstream(t)
	e := newEnv(t, envOptions{upstream: &registrytest.Registry{URL: up.url, Host: up.url.Host}})
	img := randomImage(t)
	ref := e.ref(t, "project1/app:1")
	if err := remote.Write(ref, img, p1...); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref, p1...)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer: %v", err)
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("layer digest: %v", err)
		}
	}
	if up.redirects.Load() < int64(len(layers)) || up.blobBytes.Load() != 0 {
		t.Errorf("the upstream redirected %d blob GETs and served %d blob bytes; want every blob GET redirected, none served",
			up.redirects.Load(), up.blobBytes.Load())
	}
	// What the client sees: the redirect to storage, not bytes.
	d, _ := layers[0].Digest()
	tok := e.token(t, "p1-ci", "p1-secret", "repository:project1/app:pull")
	resp, body := e.do(t, http.MethodGet, "/v2/project1/app/blobs/"+d.String(), tok, nil)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusTemporaryRedirect || loc == nil || loc.Host != up.storage.Host {
		t.Errorf("blob GET through the gateway: %s, Location %q, %d body bytes; want 307 to %s",
			resp.Status, resp.Header.Get("Location"), len(body), up.storage.Host)
	}
}
