package registry_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tenantguard/tenantguard/internal/registry/registrytest"
)

// countingForwarder forwards TCP connections to a target and counts them,
// so a test can see how many connections the gateway opened.
type countingForwarder struct {
	addr     string
	accepted atomic.Int64
}

func startCountingForwarder(t *testing.T, target string) *countingForwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &countingForwarder{addr: ln.Addr().String()}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return f
}

// TestUpstreamConnectionsReused: sequential requests through the gateway
// reuse its HTTP/1.1 connections to the upstream (blob bodies are read to
// the end, so each connection goes back to the pool) instead of opening
// one per request.
func TestUpstreamConnectionsReused(t *testing.T) {
	up := registrytest.Start(t, registrytest.Options{})
	fwd := startCountingForwarder(t, up.Host)
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
