package registry_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tenantguard/tenantguard/internal/registry/registrytest"
)

// TestUpstreamConnectionsReused: sequential requests through the gateway
// reuse its HTTP/1.1 connections to the upstream (blob bodies are read to
// the end, so each connection goes back to the pool) instead of opening
// one per request.
func TestUpstreamConnectionsReused(t *testing.T) {
	up := registrytest.Start(t, registrytest.Options{})
	fwd := startForwarder(t, up.Host, 0)
	e := newEnv(t, envOptions{upstream: &registrytest.Registry{
		URL: &url.URL{Scheme: "http", Host: fwd.addr}, Host: fwd.addr}})
	img := randomImage(t)
	if err := remote.Write(e.ref(t, "project1/app:1"), img, p1...); err != nil {
		t.Fatalf("push: %v", err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	tok := e.token(t, "p1-ci", "p1-secret", "repository:project1/app:pull")
	get := func(method, path string) {
		t.Helper()
		resp, _ := e.do(t, method, path, tok, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %s", method, path, resp.Status)
		}
	}
	get(http.MethodGet, "/v2/project1/app/blobs/"+d.String())
	before := fwd.accepted.Load()
	const requests = 40
	for i := 0; i < requests/2; i++ {
		get(http.MethodGet, "/v2/project1/app/blobs/"+d.String())
		get(http.MethodHead, "/v2/project1/app/manifests/1")
	}
	// A dial the transport starts while a connection is on its way back to
	// the pool may still land; one per request would be 40.
	if opened := fwd.accepted.Load() - before; opened > 2 {
		t.Errorf("%d sequential requests opened %d new upstream connections; want them reused", requests, opened)
	}
}
