package certrotation_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/internal/certrotation"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

// TestRotationRefusesNoRequest runs two replicas, each an HTTPS server
// whose certificate controller-runtime's certificate watcher reloads from
// the replica's directory, through seven and a half hours of a fake clock
// with a one-hour serving validity: about ten serving certificates and one
// CA rotation. Clients call both servers all along, trusting the caBundle
// of the webhook configuration: one reads it before every request; the
// other uses the bundle of one step before, as an API server that has not
// seen the last write yet. Every request must succeed.
//
// After each replica's pass the test waits until that replica serves its
// new files and the clients have made two rounds, so every intermediate
// state, one replica ahead of the other included, is probed.
func TestRotationRefusesNoRequest(t *testing.T) {
	admin := adminClient(t)
	ns := namespace(t, admin)
	conf := ns + "-v"
	validatingConfiguration(t, admin, conf, 1)
	guard := guardClient(t, admin, ns, []string{conf})
	clock := clocktesting.NewFakeClock(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var replicas []*certrotation.Rotator
	var addrs []string
	for range 2 {
		r := newRotator(t, options(guard, ns, clock, conf))
		if err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, r)
		addrs = append(addrs, serveHTTPS(ctx, t, r.CertDir()))
	}

	p := &prober{client: admin, configuration: conf, serverName: certrotation.ServiceDNSNames("tenantguard", ns)[0],
		now: clock.Now, addrs: addrs, leaves: map[string]bool{}, issuers: map[string]bool{}}
	p.lagging.Store(p.bundle(ctx))
	probing := make(chan struct{})
	go func() { defer close(probing); p.run(ctx) }()

	maxCAs := 0
	const step = 5 * time.Minute
	for elapsed := time.Duration(0); elapsed < 7*time.Hour+30*time.Minute; elapsed += step {
		p.lagging.Store(p.bundle(ctx))
		clock.Step(step)
		for i, r := range replicas {
			if err := r.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			waitServes(t, addrs[i], r.CertDir())
			p.waitRounds(2)
		}
		cas, err := webhook.ParseCertificates(p.bundle(ctx))
		if err != nil {
			t.Fatal(err)
		}
		maxCAs = max(maxCAs, len(cas))
	}
	cancel()
	<-probing

	t.Logf("%d requests succeeded, %d failed; %d serving certificates from %d CAs", p.ok.Load(), p.failed.Load(), len(p.leaves), len(p.issuers))
	if n := p.failed.Load(); n > 0 {
		t.Fatalf("%d requests failed, the first: %v", n, p.errs)
	}
	if p.ok.Load() == 0 {
		t.Fatal("no request was made")
	}
	if len(p.leaves) < 10 || len(p.issuers) < 2 {
		t.Fatalf("the clients met %d serving certificates from %d CAs: want at least 10 renewals and one CA rotation", len(p.leaves), len(p.issuers))
	}
	final, err := webhook.ParseCertificates(p.bundle(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if maxCAs != 2 || len(final) != 1 {
		t.Fatalf("the bundle held up to %d CAs and holds %d at the end: want the old CA kept beside the new, then retired", maxCAs, len(final))
	}
}

// serveHTTPS serves "ok" on 127.0.0.1 with the certificate in dir, as
// the webhook server does: a certificate watcher reloads it on change.
func serveHTTPS(ctx context.Context, t *testing.T, dir string) string {
	t.Helper()
	w := newWatcher(ctx, t, dir)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: w.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }), ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// newWatcher watches the certificate in dir, as the webhook server does.
func newWatcher(ctx context.Context, t *testing.T, dir string) *certwatcher.CertWatcher {
	t.Helper()
	w, err := certwatcher.New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := w.Start(ctx); err != nil {
			t.Errorf("certificate watcher: %v", err)
		}
	}()
	return w
}

// waitServes waits until the server at addr serves the certificate in dir.
func waitServes(t *testing.T, addr, dir string) {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := webhook.ParseCertificates(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	for {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // only compares what is served
		if err != nil {
			t.Fatal(err)
		}
		served := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if served.Equal(leaf[0]) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// prober calls every server in turn, forever, with a client that trusts
// the configuration's caBundle as read before the request, and one that
// trusts the lagging bundle.
type prober struct {
	client        client.Client
	configuration string
	serverName    string
	now           func() time.Time
	addrs         []string
	lagging       atomic.Value // []byte

	ok, failed, rounds atomic.Int64
	mu                 sync.Mutex
	errs               []error
	leaves, issuers    map[string]bool
}

func (p *prober) bundle(ctx context.Context) []byte {
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := p.client.Get(ctx, client.ObjectKey{Name: p.configuration}, vwc); err != nil {
		return nil
	}
	return vwc.Webhooks[0].ClientConfig.CABundle
}

func (p *prober) run(ctx context.Context) {
	for ctx.Err() == nil {
		for _, addr := range p.addrs {
			fresh := p.bundle(ctx)
			if ctx.Err() != nil {
				return
			}
			for _, bundle := range [][]byte{fresh, p.lagging.Load().([]byte)} {
				p.record(p.request(addr, bundle))
			}
		}
		p.rounds.Add(1)
	}
}

func (p *prober) request(addr string, bundle []byte) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, fmt.Errorf("caBundle %q holds no certificate", bundle)
	}
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: p.serverName, Time: p.now}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return resp.TLS.PeerCertificates[0], nil
}

func (p *prober) record(leaf *x509.Certificate, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.failed.Add(1)
		if len(p.errs) < 5 {
			p.errs = append(p.errs, fmt.Errorf("at %s: %w", p.now().Format(time.TimeOnly), err))
		}
		return
	}
	p.ok.Add(1)
	p.leaves[string(leaf.Raw)] = true
	p.issuers[string(leaf.AuthorityKeyId)] = true
}

// waitRounds waits until the prober has made n more full rounds.
func (p *prober) waitRounds(n int64) {
	// A round under way may have started before the caller's change.
	target := p.rounds.Load() + n + 1
	for p.rounds.Load() < target {
		time.Sleep(time.Millisecond)
	}
}
