package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/registry"
	"github.com/tenantguard/tenantguard/internal/registry/lease"
)

// TestImmutableAcrossReplicas: two gateway replicas in front of the same
// upstream, with Lease locks in a real API server. Concurrent first pushes
// of one immutable tag, spread over both replicas, let exactly one win.
func TestImmutableAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	cp := devenvtest.Start(t, devenv.Options{})
	kube := kubernetes.NewForConfigOrDie(cp.Config)
	ctx := context.Background()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenantguard-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := newEnv(t, envOptions{mutate: func(cfg *registry.Config) {
		cfg.Kube, cfg.LockNamespace, cfg.LockHolder = cp.Config, "tenantguard-system", "replica-a"
	}})
	// Replica b: the same upstream, keys and rules.
	b := newEnv(t, envOptions{upstream: a.upstream, mutate: func(cfg *registry.Config) {
		cfg.Kube, cfg.LockNamespace, cfg.LockHolder = cp.Config, "tenantguard-system", "replica-b"
		cfg.SigningKeyDir = a.keyDir
		cfg.UpstreamUsername, cfg.UpstreamPasswordFile = a.cfg.UpstreamUsername, a.cfg.UpstreamPasswordFile
	}})

	for round := 0; round < 3; round++ {
		const n = 6
		tag := fmt.Sprintf("v%d.0", round)
		var manifests [][]byte
		var types []string
		for i := 0; i < n; i++ {
			img := randomImage(t)
			if err := remote.Write(a.ref(t, fmt.Sprintf("project1/race:pre-%d-%d", round, i)), img, p1...); err != nil {
				t.Fatal(err)
			}
			raw, _ := img.RawManifest()
			mt, _ := img.MediaType()
			manifests, types = append(manifests, raw), append(types, string(mt))
		}
		tok := a.token(t, "p1-ci", "p1-secret", "repository:project1/race:pull,push") // valid on both replicas
		statuses := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			host := a.host
			if i%2 == 1 {
				host = b.host
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPut, "http://"+host+"/v2/project1/race/manifests/"+tag, bytes.NewReader(manifests[i]))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", types[i])
				<-start
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for _, s := range statuses {
			if s == http.StatusCreated {
				won++
			} else if s != http.StatusForbidden {
				t.Errorf("round %d: unexpected status %d", round, s)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d pushes of new immutable tag %s won across two replicas (%v), want 1", round, won, tag, statuses)
		}
	}
	leases, err := kube.CoordinationV1().Leases("tenantguard-system").List(ctx, metav1.ListOptions{LabelSelector: lease.Label})
	if err != nil || len(leases.Items) != 0 {
		t.Errorf("leases left behind: %d, %v", len(leases.Items), err)
	}

	t.Run("a dead replica's lease is taken over", func(t *testing.T) {
		l := &lease.Locker{Client: kube, Namespace: "tenantguard-system", Holder: "c", Duration: 2 * time.Second}
		secs := int32(2)
		old := metav1.NewMicroTime(time.Now().Add(-time.Minute))
		dead := "replica-dead"
		if _, err := kube.CoordinationV1().Leases("tenantguard-system").Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: lease.Name("project1/app:v9"), Labels: map[string]string{lease.Label: "true"}},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &dead, LeaseDurationSeconds: &secs, RenewTime: &old},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		unlock, err := l.Lock(lctx, "project1/app:v9")
		if err != nil {
			t.Fatalf("stale lease not taken over: %v", err)
		}
		// While held, another locker waits.
		wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer wcancel()
		if _, err := (&lease.Locker{Client: kube, Namespace: "tenantguard-system", Holder: "d"}).Lock(wctx, "project1/app:v9"); err == nil {
			t.Error("a second holder got a held lease")
		}
		unlock()
	})
}
