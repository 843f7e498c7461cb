package registry_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tenantguard/tenantguard/internal/registry/registrytest"
)

// blobLayer is a layer of deterministic pseudo-random bytes, generated as
// it is read, so the client never holds the blob in memory.
type blobLayer struct {
	size   int64
	seed   [32]byte
	digest v1.Hash
}

func newBlobLayer(tb testing.TB, size int64, seed byte) *blobLayer {
	tb.Helper()
	l := &blobLayer{size: size}
	l.seed[0] = seed
	h := sha256.New()
	if _, err := io.Copy(h, l.reader()); err != nil {
		tb.Fatal(err)
	}
	l.digest = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
	return l
}

func (l *blobLayer) reader() io.Reader {
	return io.LimitReader(rand.NewChaCha8(l.seed), l.size)
}

func (l *blobLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error)   { return io.NopCloser(l.reader()), nil }
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) { return io.NopCloser(l.reader()), nil }
func (l *blobLayer) Size() (int64, error)                 { return l.size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error)  { return types.OCILayer, nil }

// BenchmarkBlob256MiB pushes and pulls a 256 MiB blob with
// go-containerregistry, directly to a Distribution registry (filesystem
// storage in a temporary directory) and through the gateway (running in its
// own process, so that its heap and CPU time can be read from its /metrics
// while the blob streams through).
//
//	go test -run '^$' -bench BenchmarkBlob256MiB -benchtime 5x ./internal/registry/
//
// TENANTGUARD_BENCH_LINK_MBPS=N puts the registry behind a link of N MB/s
// each way, for both paths: the case where the network, not the CPU, is
// the bound. TENANTGUARD_BENCH_TLS=1 serves the registry and the gateway
// over https.
func BenchmarkBlob256MiB(b *testing.B) {
	size := int64(256 << 20)
	if s := os.Getenv("TENANTGUARD_BENCH_BLOB_MIB"); s != "" { // a smaller blob while working on the benchmark
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		size = int64(n) << 20
	}
	upOpts := registrytest.Options{
		Htpasswd:      map[string]string{"gateway": "upstream-secret"},
		RootDirectory: b.TempDir(),
	}
	var certPEM, keyPEM string
	clientOpts := []remote.Option{remote.WithContext(context.Background())}
	if os.Getenv("TENANTGUARD_BENCH_TLS") != "" {
		// https on the registry and on the gateway, as deployed.
		var pool *x509.CertPool
		certPEM, keyPEM, pool = selfSigned(b)
		cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
		if err != nil {
			b.Fatal(err)
		}
		upOpts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		tr := remote.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		clientOpts = append(clientOpts, remote.WithTransport(tr))
	}
	up := registrytest.Start(b, upOpts)
	if s := os.Getenv("TENANTGUARD_BENCH_LINK_MBPS"); s != "" {
		// The registry across a network link of this many MB/s each way, for
		// the client directly and for the gateway alike (the gateway next to
		// its clients, the registry a cloud service).
		mbps, err := strconv.ParseFloat(s, 64)
		if err != nil {
			b.Fatal(err)
		}
		link := startForwarder(b, up.Host, mbps*1e6)
		up = &registrytest.Registry{URL: &url.URL{Scheme: up.URL.Scheme, Host: link.addr}, Host: link.addr}
	}
	cfg, _ := envConfig(b, up)
	cfg.UpstreamUsername = "gateway"
	cfg.UpstreamPasswordFile = writeFile(b, b.TempDir(), "upstream-password", "upstream-secret")
	if certPEM != "" {
		dir := b.TempDir()
		cfg.TLSCertFile = writeFile(b, dir, "tls.crt", certPEM)
		cfg.TLSKeyFile = writeFile(b, dir, "tls.key", keyPEM)
		cfg.UpstreamCAFile = cfg.TLSCertFile
	}
	gw := startGatewayProcess(b, cfg)
	gwURL, err := url.Parse(gw.srv.RegistryURL)
	if err != nil {
		b.Fatal(err)
	}
	gwHost := gwURL.Host
	targets := []struct {
		name string
		host string
		auth authn.Authenticator
	}{
		{"direct", up.Host, &authn.Basic{Username: "gateway", Password: "upstream-secret"}},
		{"gateway", gwHost, &authn.Basic{Username: "p1-ci", Password: "p1-secret"}},
	}
	layer := newBlobLayer(b, size, 1)
	var seq atomic.Int64
	for _, op := range []string{"push", "pull"} {
		for _, target := range targets {
			b.Run(op+"/"+target.name, func(b *testing.B) {
				opts := append([]remote.Option{remote.WithAuth(target.auth)}, clientOpts...)
				var pullRef name.Digest
				if op == "pull" {
					repo, _ := name.NewRepository(target.host + "/project1/pull")
					if err := remote.WriteLayer(repo, layer, opts...); err != nil {
						b.Fatal(err)
					}
					pullRef = repo.Digest(layer.digest.String())
				}
				var mem *heapSampler
				if target.name == "gateway" {
					mem = sampleHeap(b, gw.srv.MetricsURL)
				}
				b.SetBytes(size)
				cpuBefore := processCPU(b)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					switch op {
					case "push":
						// A new repository each time, so the blob is uploaded, not found.
						repo, _ := name.NewRepository(fmt.Sprintf("%s/project1/push-%d", target.host, seq.Add(1)))
						if err := remote.WriteLayer(repo, layer, opts...); err != nil {
							b.Fatal(err)
						}
					case "pull":
						l, err := remote.Layer(pullRef, opts...)
						if err != nil {
							b.Fatal(err)
						}
						rc, err := l.Compressed()
						if err != nil {
							b.Fatal(err)
						}
						n, err := io.Copy(io.Discard, rc)
						if err == nil {
							err = rc.Close() // verifies the digest
						}
						if err != nil || n != size {
							b.Fatalf("pulled %d bytes: %v", n, err)
						}
					}
				}
				b.StopTimer()
				gib := float64(b.N) * float64(size) / (1 << 30)
				// This process is the client and the upstream; the gateway is
				// apart, so each side's CPU per GiB moved can be read.
				b.ReportMetric((processCPU(b)-cpuBefore).Seconds()/gib, "client+upstream-cpu-s/GiB")
				if mem != nil {
					mem.report(b, gib)
				}
			})
		}
	}
}

// processCPU is the user and system CPU time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapSampler polls the gateway's heap while a benchmark runs, and reads
// its CPU time at the start and the end.
type heapSampler struct {
	url          string
	client       *http.Client
	before, peak float64
	rssBefore    float64
	rssPeak      float64
	cpuBefore    float64
	stop         chan struct{}
	done         sync.WaitGroup
	readErr      error
}

func sampleHeap(b *testing.B, metricsURL string) *heapSampler {
	// No gzip: compressing the metrics would cost the gateway CPU the
	// benchmark is measuring.
	s := &heapSampler{url: metricsURL + "/metrics", stop: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	heap, rss, cpu, err := s.read()
	if err != nil {
		b.Fatal(err)
	}
	s.before, s.peak, s.rssBefore, s.rssPeak, s.cpuBefore = heap, heap, rss, rss, cpu
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				heap, rss, _, err := s.read()
				if err != nil {
					s.readErr = err
					continue
				}
				s.peak, s.rssPeak = max(s.peak, heap), max(s.rssPeak, rss)
			}
		}
	}()
	return s
}

// report reports the heap, the resident set, and the gateway's CPU
// seconds per GiB moved (process_cpu_seconds_total counts in clock ticks of
// 10 ms: a few hundred ms of CPU per run is read to within a few percent).
func (s *heapSampler) report(b *testing.B, gib float64) {
	close(s.stop)
	s.done.Wait()
	const mib = 1 << 20
	if s.readErr != nil {
		b.Logf("reading the gateway's metrics failed at least once: %v", s.readErr)
	}
	if _, _, cpu, err := s.read(); err == nil {
		b.ReportMetric((cpu-s.cpuBefore)/gib, "gw-cpu-s/GiB")
	} else {
		b.Logf("reading the gateway's CPU time: %v", err)
	}
	b.ReportMetric(s.peak/mib, "gw-heap-peak-MiB")
	b.ReportMetric((s.peak-s.before)/mib, "gw-heap-growth-MiB")
	b.ReportMetric(s.rssPeak/mib, "gw-rss-peak-MiB")
}

// read returns go_memstats_heap_inuse_bytes, process_resident_memory_bytes
// and process_cpu_seconds_total.
func (s *heapSampler) read() (heap, rss, cpu float64, err error) {
	resp, err := s.client.Get(s.url)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_memstats_heap_inuse_bytes":
			heap = v
		case "process_resident_memory_bytes":
			rss = v
		case "process_cpu_seconds_total":
			cpu = v
		}
	}
	return heap, rss, cpu, sc.Err()
}

// BenchmarkTokenEndpoint is the token issuance rate of the token endpoint:
// GET /token with a robot's basic auth and the two scopes of a docker push,
// in parallel. Successful logins are cached, so this is the steady state of
// a CI job; BenchmarkLogin in package authn is the cost of a bcrypt check.
//
//	go test -run '^$' -bench BenchmarkTokenEndpoint ./internal/registry/
func BenchmarkTokenEndpoint(b *testing.B) {
	e := newEnv(b, envOptions{})
	q := url.Values{"service": {e.cfg.Service}, "scope": {"repository:project1/app:pull,push", "repository:project1/base:pull"}}
	u := e.srv.Realm + "?" + q.Encode()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.SetBasicAuth("p1-ci", "p1-secret")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("token: %s", resp.Status)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkManifestHead is the per-request overhead of the gateway (token
// check, rules, one proxied round trip) on a small request. The upstream
// wants no credentials here, so that neither path pays for its bcrypt.
//
//	go test -run '^$' -bench BenchmarkManifestHead ./internal/registry/
func BenchmarkManifestHead(b *testing.B) {
	e := newEnv(b, envOptions{upstream: registrytest.Start(b, registrytest.Options{})})
	img := randomImage(b)
	if err := remote.Write(e.ref(b, "project1/app:1"), img, p1...); err != nil {
		b.Fatal(err)
	}
	gwToken := e.token(b, "p1-ci", "p1-secret", "repository:project1/app:pull")
	for _, t := range []struct{ name, url, auth string }{
		{"direct", e.upstream.URL.String() + "/v2/project1/app/manifests/1", ""},
		{"gateway", "http://" + e.host + "/v2/project1/app/manifests/1", "Bearer " + gwToken},
	} {
		b.Run(t.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodHead, t.url, nil)
					if t.auth != "" {
						req.Header.Set("Authorization", t.auth)
					}
					req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("HEAD: %s", resp.Status)
						return
					}
				}
			})
		})
	}
}

// BenchmarkLoginUnderFlood is a good token request (a robot whose login is
// cached, the steady state of a CI job) from 127.0.0.1, alone ("quiet") and
// while 8 goroutines send bad logins for random names from 127.0.0.2 to
// 127.0.0.254, a new source address each time ("flood"). The flood's
// bcrypt work must not slow the good request down; flood-401/s and
// flood-429/s are how the gateway answered the flood.
//
//	go test -run '^$' -bench BenchmarkLoginUnderFlood -benchtime 200x ./internal/registry/
func BenchmarkLoginUnderFlood(b *testing.B) {
	e := newEnv(b, envOptions{})
	q := url.Values{"service": {e.cfg.Service}, "scope": {"repository:project1/app:pull,push"}}
	u := e.srv.Realm + "?" + q.Encode()
	get := func(client *http.Client, user, password string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.SetBasicAuth(user, password)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	good := &http.Client{}
	if status, err := get(good, "p1-ci", "p1-secret"); err != nil || status != http.StatusOK {
		b.Fatalf("first login: %d %v", status, err)
	}
	var flooders []*http.Client
	for i := 2; i <= 254; i++ {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i))}}
		flooders = append(flooders, &http.Client{Transport: &http.Transport{DialContext: d.DialContext}})
	}
	for _, mode := range []string{"quiet", "flood"} {
		b.Run(mode, func(b *testing.B) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var unauthorized, tooMany atomic.Int64
			floodStart := time.Now()
			if mode == "flood" {
				var next atomic.Int64
				for g := 0; g < 8; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							select {
							case <-stop:
								return
							default:
							}
							n := next.Add(1)
							status, err := get(flooders[int(n)%len(flooders)], fmt.Sprintf("guess-%d", n), "wrong")
							switch {
							case err != nil:
							case status == http.StatusUnauthorized:
								unauthorized.Add(1)
							case status == http.StatusTooManyRequests:
								tooMany.Add(1)
							}
						}
					}()
				}
				// Let the flood get going before measuring.
				for unauthorized.Load()+tooMany.Load() < 8 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if status, err := get(good, "p1-ci", "p1-secret"); err != nil || status != http.StatusOK {
					b.Fatalf("good login: %d %v", status, err)
				}
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
			if mode == "flood" {
				// Over the flood's whole run: a bcrypt check takes longer than
				// the measured loop.
				secs := time.Since(floodStart).Seconds()
				b.ReportMetric(float64(unauthorized.Load())/secs, "flood-401/s")
				b.ReportMetric(float64(tooMany.Load())/secs, "flood-429/s")
			}
		})
	}
}
