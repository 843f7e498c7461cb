package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/hosts"
)

// roundRobin is a TCP proxy on loopback that hands each new connection to
// the next backend, as a Service in front of the guard's replicas does.
type roundRobin struct {
	l        net.Listener
	backends []string
	next     atomic.Uint64
	conns    []atomic.Int64
}

func startRoundRobin(t *testing.T, backends ...string) *roundRobin {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rr := &roundRobin{l: l, backends: backends, conns: make([]atomic.Int64, len(backends))}
	go rr.serve()
	t.Cleanup(func() { l.Close() })
	return rr
}

func (rr *roundRobin) serve() {
	for {
		c, err := rr.l.Accept()
		if err != nil {
			return
		}
		i := int(rr.next.Add(1)-1) % len(rr.backends)
		rr.conns[i].Add(1)
		go func() {
			defer c.Close()
			b, err := net.Dial("tcp", rr.backends[i])
			if err != nil {
				return
			}
			defer b.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(b, c); done <- struct{}{} }()
			go func() { io.Copy(c, b); done <- struct{}{} }()
			<-done
		}()
	}
}

// TestClaimRacesAcrossReplicas runs two guards behind a round-robin proxy
// and races creates of one host from 50 namespaces, and of a wildcard
// against a name it matches, 20 rounds each. Every round must end with
// exactly one owner, and no claim may outlive the grace period without an
// object.
func TestClaimRacesAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	second, err := env.StartGuard(ctx, devenv.GuardOptions{Config: cfg, Dir: dir, CertDir: guard.CertDir, SkipRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	rr := startRoundRobin(t, guard.Addr, second.Addr)
	if err := env.RegisterWebhook(ctx, cfg, "tenantguard", "https://"+rr.l.Addr().String()+"/validate", guard.CertDir+"/ca.crt"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.RegisterWebhook(ctx, cfg, "tenantguard", "https://"+guard.Addr+"/validate", guard.CertDir+"/ca.crt"); err != nil {
			t.Errorf("restore webhook: %v", err)
		}
	}()

	const namespaces = 50
	spec := v1alpha1.TenantSpec{Ingress: v1alpha1.IngressPolicy{AllowedHosts: []string{"*.race.example.com"}}}
	for i := 0; i < namespaces; i++ {
		spec.Namespaces = append(spec.Namespaces, fmt.Sprintf("race-%02d", i))
	}
	tenant(t, spec, "race")

	type winner struct {
		ns, name string
		host     hosts.Name
	}
	var winners []winner
	race := func(round int, hostFor func(i int) string) {
		t.Helper()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []winner
		for i := 0; i < namespaces; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ns, name, h := fmt.Sprintf("race-%02d", i), fmt.Sprintf("r%02d", round), hostFor(i)
				if err := admin.Create(ctx, ing(ns, name, "/", h)); err == nil {
					mu.Lock()
					won = append(won, winner{ns, name, hosts.MustParse(h, v1alpha1.HostMatchSingleLabel)})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d creates admitted (%v), want exactly one owner", round, len(won), won)
		}
		winners = append(winners, won[0])
		// The losers' claims were rolled back before they were answered.
		owners := map[string]bool{}
		for _, hc := range raceClaims(t) {
			if hosts.Overlaps(hosts.OwnerOf(&hc).Name, won[0].host) {
				owners[hc.Spec.Namespace] = true
			}
		}
		if len(owners) != 1 || !owners[won[0].ns] {
			t.Fatalf("round %d: claims overlapping %s are owned by %v, want only %s", round, won[0].host, owners, won[0].ns)
		}
	}
	for round := 0; round < 20; round++ {
		race(round, func(int) string { return fmt.Sprintf("h%02d.race.example.com", round) })
	}
	for round := 20; round < 40; round++ {
		race(round, func(i int) string {
			if i%2 == 0 {
				return fmt.Sprintf("*.w%02d.race.example.com", round)
			}
			return fmt.Sprintf("x%02d.w%02d.race.example.com", round, round)
		})
	}
	for i := range rr.conns {
		if rr.conns[i].Load() == 0 {
			t.Errorf("replica %d received no connections; the race did not cross replicas", i)
		}
	}
	t.Logf("connections per replica: %d, %d", rr.conns[0].Load(), rr.conns[1].Load())

	// After the grace period, exactly the winners' claims remain.
	time.Sleep(gracePeriod + time.Second)
	eventually(t, func() error {
		claims := raceClaims(t)
		if len(claims) != len(winners) {
			return fmt.Errorf("%d race claims, want %d (one per round)", len(claims), len(winners))
		}
		for _, w := range winners {
			hc := v1alpha1.HostClaim{}
			if err := admin.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(w.host)}, &hc); err != nil || hc.Spec.Namespace != w.ns {
				return fmt.Errorf("winner %s/%s (%s): claim %+v, %v", w.ns, w.name, w.host, hc.Spec, err)
			}
		}
		return nil
	})
	fmt.Fprintf(os.Stderr, "race: %d rounds, one owner each\n", len(winners))
}

func raceClaims(t *testing.T) []v1alpha1.HostClaim {
	t.Helper()
	key, value := hosts.BelowSelector("race.example.com")
	list := &v1alpha1.HostClaimList{}
	if err := admin.List(context.Background(), list, client.MatchingLabels{key: value}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}
