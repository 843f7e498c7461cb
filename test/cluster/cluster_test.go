package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/audit"
	"github.com/tenantguard/tenantguard/internal/guard"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/policy"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

// outcome is one create as its client saw it.
type outcome struct {
	obj     client.Object
	err     error
	latency time.Duration
}

// createAll creates objs with the given number of concurrent clients.
func createAll(ctx context.Context, c client.Client, objs []client.Object, concurrency int) []outcome {
	out := make([]outcome, len(objs))
	work := make(chan int)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				start := time.Now()
				err := c.Create(ctx, objs[i])
				out[i] = outcome{obj: objs[i], err: err, latency: time.Since(start)}
			}
		}()
	}
	for i := range objs {
		work <- i
	}
	close(work)
	wg.Wait()
	return out
}

func namespaces(t *testing.T, prefix string, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		name := fmt.Sprintf("%s-%02d", prefix, i)
		if err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		out = append(out, name)
	}
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestFirstInstallClaimsEveryExistingHost: the guards were installed over
// the preexisting Ingresses (TestMain); the adopter claims every one of
// their hosts. The time from the guards' start is logged. It runs first:
// the other tests check invariants over the whole cluster, these
// Ingresses included.
func TestFirstInstallClaimsEveryExistingHost(t *testing.T) {
	ctx := context.Background()
	want := preexisting()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		claims := &v1alpha1.HostClaimList{}
		if err := admin.List(ctx, claims); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, hc := range claims.Items {
			if strings.HasSuffix(hc.Spec.Host, ".legacy.example.com") && strings.HasPrefix(hc.Spec.Namespace, "legacy-") {
				n++
			}
		}
		if n == want {
			t.Logf("first install over %d Ingresses: every host claimed %v after the guards started", want, time.Since(adoptStart).Round(time.Second))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d preexisting hosts claimed after %v", n, want, time.Since(adoptStart))
		}
		time.Sleep(time.Second)
	}
}

// TestOneOwnerPerHostUnderRaces: 20 namespaces create an Ingress for the
// same new host at the same moment, through two replicas, 20 times; and
// wildcards race names below them. Exactly one namespace wins every round:
// never two (a hijack), never none (a host nobody can get).
func TestOneOwnerPerHostUnderRaces(t *testing.T) {
	ctx := context.Background()
	nss := namespaces(t, "race", 20)
	for round := range 20 {
		host := fmt.Sprintf("r%d.race.example.com", round)
		var objs []client.Object
		for _, ns := range nss {
			objs = append(objs, ingress(ns, fmt.Sprintf("r%d", round), host))
		}
		admitted := 0
		for _, o := range createAll(ctx, admin, objs, len(objs)) {
			switch {
			case o.err == nil:
				admitted++
			case !strings.Contains(o.err.Error(), "belongs to") && !strings.Contains(o.err.Error(), "claimed at the same moment") && !strings.Contains(o.err.Error(), "being claimed"):
				t.Errorf("round %d: %s refused for another reason: %v", round, o.obj.GetNamespace(), o.err)
			}
		}
		if admitted != 1 {
			t.Fatalf("round %d: %d of %d namespaces admitted for %s, want exactly 1", round, admitted, len(objs), host)
		}
	}
	for round := range 10 {
		var objs []client.Object
		for i, ns := range nss {
			host := fmt.Sprintf("x%d.w%d.race.example.com", i, round)
			if i%2 == 0 {
				host = fmt.Sprintf("*.w%d.race.example.com", round)
			}
			objs = append(objs, ingress(ns, fmt.Sprintf("w%d", round), host))
		}
		winners := map[string]bool{}
		for _, o := range createAll(ctx, admin, objs, len(objs)) {
			if o.err == nil {
				winners[o.obj.GetNamespace()] = true
			}
		}
		if len(winners) == 0 {
			t.Fatalf("wildcard round %d: no namespace admitted", round)
		}
		// Names below the wildcard that do not overlap each other may all
		// win, but never beside the wildcard.
		wildcardWon := false
		for ns := range winners {
			if idx, _ := strconv.Atoi(ns[len(ns)-2:]); idx%2 == 0 {
				wildcardWon = true
			}
		}
		if wildcardWon && len(winners) != 1 {
			t.Fatalf("wildcard round %d: the wildcard was admitted beside %d other namespaces", round, len(winners)-1)
		}
	}
	checkInvariants(t)
}

// TestBurstOfNewHosts: 200 Ingresses with new unique hosts from 16
// concurrent clients through two replicas, and one Ingress with 100 new
// hosts. None may time out. The latencies are logged (run with -v); the
// figures in docs/performance.md come from here.
func TestBurstOfNewHosts(t *testing.T) {
	ctx := context.Background()
	nss := namespaces(t, "burst", 8)
	var objs []client.Object
	for i := range 200 {
		objs = append(objs, ingress(nss[i%len(nss)], fmt.Sprintf("b%d", i), fmt.Sprintf("b%d.burst.example.com", i)))
	}
	before := webhookRequests(t)
	start := time.Now()
	results := createAll(ctx, admin, objs, 16)
	elapsed := time.Since(start)
	perHost := (webhookRequests(t) - before) / 200
	t.Logf("API requests of the webhooks per new host: %.2f", perHost)
	// The claim protocol and nothing more: the create, and a GET of each
	// wildcard claim above the name.
	if want := float64(1 + len(hosts.AboveClaimNames(hosts.MustParse("b0.burst.example.com", v1alpha1.HostMatchExact)))); perHost != want {
		t.Errorf("the webhooks made %.2f API requests per new host, want %.0f (the create and the overlap check)", perHost, want)
	}
	var lat []time.Duration
	for _, o := range results {
		if o.err != nil {
			t.Errorf("%s/%s: %v", o.obj.GetNamespace(), o.obj.GetName(), o.err)
		}
		lat = append(lat, o.latency)
	}
	t.Logf("200 new hosts, concurrency 16, two replicas: p50 %v, p99 %v, %.0f creates/s",
		percentile(lat, 0.5).Round(100*time.Microsecond), percentile(lat, 0.99).Round(100*time.Microsecond), 200/elapsed.Seconds())

	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("h%d.many.example.com", i))
	}
	start = time.Now()
	if err := admin.Create(ctx, ingress(nss[0], "hundred", many...)); err != nil {
		t.Fatalf("Ingress with 100 new hosts: %v", err)
	}
	t.Logf("one Ingress with 100 new hosts: admitted in %v", time.Since(start).Round(time.Millisecond))
	checkInvariants(t)
}

// TestIgnoreBurstLeavesNoUnclaimedHost: namespaces of no tenant run under
// failurePolicy Ignore here, where an HTTP error from the guard would
// admit an object unguarded. 40 parallel creates; every one admitted must
// have its claim when its client hears the answer, not later.
func TestIgnoreBurstLeavesNoUnclaimedHost(t *testing.T) {
	ctx := context.Background()
	ns := namespaces(t, "ignore", 1)[0]
	var objs []client.Object
	for i := range 40 {
		objs = append(objs, ingress(ns, fmt.Sprintf("i%d", i), fmt.Sprintf("i%d.ignore.example.com", i)))
	}
	for _, o := range createAll(ctx, admin, objs, 40) {
		if o.err != nil {
			continue
		}
		host := o.obj.(*networkingv1.Ingress).Spec.Rules[0].Host
		hc := &v1alpha1.HostClaim{}
		if err := admin.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(hosts.MustParse(host, v1alpha1.HostMatchExact))}, hc); err != nil || hc.Spec.Namespace != ns {
			t.Errorf("%s admitted without its claim: %v %+v", host, err, hc.Spec)
		}
	}
	checkInvariants(t)
}

// TestReplicaKilledMidBurst kills one replica with SIGKILL in the middle of
// a burst. Requests in flight on it fail: tenant namespaces fail closed,
// and these namespaces of no tenant run under Ignore here, so the API
// server admits them unguarded. The other replica answers the rest. The
// adopter then claims what was admitted unguarded, nothing is served from
// two namespaces, and nothing is left half-claimed after the grace period.
func TestReplicaKilledMidBurst(t *testing.T) {
	ctx := context.Background()
	nss := namespaces(t, "kill", 8)
	var objs []client.Object
	for i := range 200 {
		objs = append(objs, ingress(nss[i%len(nss)], fmt.Sprintf("k%d", i), fmt.Sprintf("k%d.kill.example.com", i)))
	}
	done := make(chan []outcome)
	go func() { done <- createAll(ctx, admin, objs, 16) }()
	for {
		list := &networkingv1.IngressList{}
		if err := admin.List(ctx, list, client.InNamespace(nss[0])); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) >= 5 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := guards.Kill(0); err != nil {
		t.Fatal(err)
	}
	results := <-done
	failed := 0
	for _, o := range results {
		if o.err != nil {
			failed++
		}
	}
	t.Logf("burst of 200 with replica 0 killed: %d refused or failed while it died", failed)
	if failed == len(results) {
		t.Fatal("every create failed: the surviving replica did not answer")
	}
	if err := guards.Start(0); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t)
}

// TestForgedReviewCreatesNoClaim posts AdmissionReviews to a replica
// directly, as anyone who can reach the webhook's Service could: without a
// uid, and far too large. Neither may make the guard write.
func TestForgedReviewCreatesNoClaim(t *testing.T) {
	ctx := context.Background()
	ns := namespaces(t, "forge", 1)[0]
	c := webhookClient(t)
	for _, uid := range []string{"", "forged-uid-without-api-server"} {
		body := reviewOf(t, ingress(ns, "forged", "forged.example.com"), uid, 0)
		resp := postReview(t, c, guards.WebhookAddr(1), body)
		if uid == "" {
			if resp.Allowed || !strings.Contains(resp.Result.Message, "uid") {
				t.Fatalf("review without uid: %+v", resp)
			}
			hc := &v1alpha1.HostClaim{}
			err := admin.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(hosts.MustParse("forged.example.com", v1alpha1.HostMatchExact))}, hc)
			if !apierrors.IsNotFound(err) {
				t.Fatalf("a review without uid made a claim: %v %+v", err, hc.Spec)
			}
		}
	}
	big := reviewOf(t, ingress(ns, "big", "big.example.com"), "u", webhook.DefaultMaxBodyBytes)
	req, _ := http.NewRequest(http.MethodPost, "https://"+guards.WebhookAddr(1)+webhook.Path, bytes.NewReader(big))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized review: HTTP %d, want 413", resp.StatusCode)
	}
}

// TestMaximalBodiesStayUnderTheMemoryLimit posts 16 reviews of the largest
// accepted size in parallel to one replica, then reads its peak resident
// memory (VmHWM) from /proc: it must stay under the Deployment's limit.
func TestMaximalBodiesStayUnderTheMemoryLimit(t *testing.T) {
	const limit = 512 << 20 // the Deployment's memory limit
	ns := namespaces(t, "memory", 1)[0]
	c := webhookClient(t)
	body := reviewOf(t, ingress(ns, "huge", "huge.example.com"), "mem", webhook.DefaultMaxBodyBytes-1024)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, "https://"+guards.WebhookAddr(0)+webhook.Path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	peak := peakRSS(t, guards.Pid(0))
	t.Logf("16 parallel reviews of %.1f MiB: peak RSS of the replica %d MiB (limit %d MiB)", float64(len(body))/(1<<20), peak>>20, limit>>20)
	if peak >= limit {
		t.Fatalf("peak RSS %d MiB reaches the Deployment's limit of %d MiB", peak>>20, limit>>20)
	}
}

// TestExcludedNamespaceHostIsRefusedToATenant replays the hijack that a
// host in use but not yet claimed allowed: an Ingress in kube-system (which
// the webhook never judges) serves a host, and a tenant's later Ingress for
// it must be refused, with the ownership recorded at once.
func TestExcludedNamespaceHostIsRefusedToATenant(t *testing.T) {
	ctx := context.Background()
	host := "grafana.project1.example.com"
	if err := admin.Create(ctx, ingress("kube-system", "grafana", host)); err != nil {
		t.Fatal(err)
	}
	ns := namespaces(t, "project1", 1)[0]
	err := admin.Create(ctx, ingress(ns, "take", host))
	if err == nil || !strings.Contains(err.Error(), `belongs to namespace "kube-system"`) {
		t.Fatalf("a later Ingress took kube-system's host: %v", err)
	}
	hc := &v1alpha1.HostClaim{}
	if err := admin.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(hosts.MustParse(host, v1alpha1.HostMatchExact))}, hc); err != nil || hc.Spec.Namespace != "kube-system" {
		t.Fatalf("claim after the refusal: %v %+v", err, hc.Spec)
	}
	checkInvariants(t)
}

// TestAPIServerRestartAndOutage restarts the API server, then takes it away
// for 30 seconds. Both replicas keep running and serving; afterwards the
// webhook admits and claims, the controllers run again (a lease holder that
// renews; an unused claim released), and the invariants hold.
func TestAPIServerRestartAndOutage(t *testing.T) {
	ctx := context.Background()
	ns := namespaces(t, "outage", 1)[0]
	for _, down := range []time.Duration{0, 30 * time.Second} {
		if err := env.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(down)
		if err := env.StartAPIServer(); err != nil {
			t.Fatal(err)
		}
		for i := range guards.Replicas() {
			if guards.Pid(i) == 0 {
				t.Fatalf("replica %d exited during an API server outage of %v:\n%s", i, down, logOf(i))
			}
		}
		name := fmt.Sprintf("after-%d", int(down.Seconds()))
		host := name + ".outage.example.com"
		eventually(t, 2*time.Minute, func() error { return admin.Create(ctx, ingress(ns, name, host)) })
		hc := &v1alpha1.HostClaim{}
		if err := admin.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(hosts.MustParse(host, v1alpha1.HostMatchExact))}, hc); err != nil || hc.Spec.Namespace != ns {
			t.Fatalf("after an outage of %v: claim %v %+v", down, err, hc.Spec)
		}
		// The controllers resume: a lease holder renews, and a deleted
		// Ingress's claim is released after the grace period.
		leaseRenewed(t)
		if err := admin.Delete(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, func() error {
			err := admin.Get(ctx, client.ObjectKey{Name: hc.Name}, &v1alpha1.HostClaim{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("claim %s not released yet (%v)", hc.Name, err)
		})
		for i := range guards.Replicas() {
			if guards.Pid(i) == 0 {
				t.Fatalf("replica %d exited after an API server outage of %v:\n%s", i, down, logOf(i))
			}
		}
	}
	checkInvariants(t)
}

// webhookRequests sums tenantguard_webhook_api_requests_total over the
// replicas.
func webhookRequests(t *testing.T) float64 {
	t.Helper()
	var n float64
	for i := range guards.Replicas() {
		m, err := guards.Metrics(context.Background(), i)
		if err != nil {
			t.Fatal(err)
		}
		n += m.Sum("tenantguard_webhook_api_requests_total", nil)
	}
	return n
}

func leaseRenewed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var first *metav1.MicroTime
	eventually(t, 2*time.Minute, func() error {
		lease := &coordinationv1.Lease{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: cfg.GuardNamespace, Name: guard.LeaseName}, lease); err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" || lease.Spec.RenewTime == nil {
			return fmt.Errorf("lease has no holder")
		}
		if first == nil {
			first = lease.Spec.RenewTime
			return fmt.Errorf("waiting for a renewal")
		}
		if !lease.Spec.RenewTime.After(first.Time) {
			return fmt.Errorf("lease not renewed since %v", first.Time)
		}
		return nil
	})
}

func eventually(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", within, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func logOf(i int) string {
	data, _ := os.ReadFile(guards.LogPath(i))
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// webhookClient trusts the replicas' serving certificate.
func webhookClient(t *testing.T) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(guards.CABundle()) {
		t.Fatal("no CA bundle")
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// reviewOf is an AdmissionReview for creating obj, padded with an
// annotation to at least size bytes.
func reviewOf(t *testing.T, obj *networkingv1.Ingress, uid string, size int) []byte {
	t.Helper()
	obj = obj.DeepCopy()
	obj.APIVersion, obj.Kind = "networking.k8s.io/v1", "Ingress"
	if size > 0 {
		obj.Annotations = map[string]string{"pad": strings.Repeat("x", size)}
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "", Kind: metav1.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"},
			Resource:  metav1.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
			Operation: admissionv1.Create, Namespace: obj.Namespace, Name: obj.Name,
			Object: runtime.RawExtension{Raw: raw},
		},
	}
	ar.Request.UID = types.UID(uid)
	body, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func postReview(t *testing.T, c *http.Client, addr string, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, err := c.Post("https://"+addr+webhook.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &out); err != nil || out.Response == nil {
		t.Fatalf("HTTP %d, not an AdmissionReview: %s", resp.StatusCode, data)
	}
	return out.Response
}

// peakRSS reads VmHWM, the peak resident set, of a process.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestControllersFailOver kills the replica that holds the controllers'
// lease; the other takes the lease over and its controllers run (a claim
// left unused is released). The time from the kill to the new holder is
// logged.
func TestControllersFailOver(t *testing.T) {
	ctx := context.Background()
	holder := func() (string, *metav1.MicroTime) {
		lease := &coordinationv1.Lease{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: cfg.GuardNamespace, Name: guard.LeaseName}, lease); err != nil || lease.Spec.HolderIdentity == nil {
			return "", nil
		}
		return *lease.Spec.HolderIdentity, lease.Spec.RenewTime
	}
	leaseRenewed(t)
	before, _ := holder()
	// Which replica leads is not visible from outside: kill one, and if
	// the same holder keeps renewing, it was the other; bring it back and
	// kill the other.
	for i := range guards.Replicas() {
		if err := guards.Kill(i); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		deadline := killed.Add(time.Minute)
		for time.Now().Before(deadline) {
			now, renewed := holder()
			if now != "" && now != before {
				t.Logf("controllers failed over %v after the leader was killed (lease 15 s, renew deadline 10 s)", time.Since(killed).Round(100*time.Millisecond))
				if err := guards.Start(i); err != nil {
					t.Fatal(err)
				}
				// The new leader's controllers work: a deleted Ingress's
				// claim is released.
				ns := namespaces(t, "failover", 1)[0]
				host := "failover.example.com"
				if err := admin.Create(ctx, ingress(ns, "f", host)); err != nil {
					t.Fatal(err)
				}
				if err := admin.Delete(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "f"}}); err != nil {
					t.Fatal(err)
				}
				eventually(t, 2*time.Minute, func() error {
					err := admin.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(hosts.MustParse(host, v1alpha1.HostMatchExact))}, &v1alpha1.HostClaim{})
					if apierrors.IsNotFound(err) {
						return nil
					}
					return fmt.Errorf("claim of %s not released by the new leader (%v)", host, err)
				})
				checkInvariants(t)
				return
			}
			// The same holder renewed after the kill: this replica was not
			// the leader.
			if now == before && renewed != nil && renewed.After(killed.Add(3*time.Second)) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err := guards.Start(i); err != nil {
			t.Fatal(err)
		}
		leaseRenewed(t)
	}
	t.Fatalf("no replica took the lease over from %q", before)
}

// TestRefusalIsVisibleAsEventAndMetric: a tenant's refused request leaves
// an Event on the Tenant (naming the object, the rule and the user) and a
// sample of tenantguard_admission_decisions_total with the tenant's label.
func TestRefusalIsVisibleAsEventAndMetric(t *testing.T) {
	ctx := context.Background()
	tn := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "watched"}, Spec: v1alpha1.TenantSpec{Namespaces: []string{"watched"}}}
	if err := admin.Create(ctx, tn); err != nil {
		t.Fatal(err)
	}
	// The tenant controller creates and labels the namespace.
	eventually(t, time.Minute, func() error {
		ns := &corev1.Namespace{}
		if err := admin.Get(ctx, client.ObjectKey{Name: "watched"}, ns); err != nil {
			return err
		}
		if ns.Labels[v1alpha1.TenantLabel] != "watched" {
			return fmt.Errorf("namespace not labelled yet")
		}
		return nil
	})
	lb := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "watched", Name: "public"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
	eventually(t, time.Minute, func() error {
		err := admin.Create(ctx, lb.DeepCopy())
		if err == nil {
			return fmt.Errorf("a public LoadBalancer was admitted in a tenant namespace")
		}
		if !strings.Contains(err.Error(), "tenantguard refused") {
			return err // the guard has not seen the namespace's label yet
		}
		return nil
	})
	eventually(t, time.Minute, func() error {
		list := &eventsv1.EventList{}
		if err := admin.List(ctx, list, client.InNamespace("default")); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "Tenant" && e.Regarding.Name == "watched" && e.Reason == "Refused" &&
				strings.Contains(e.Note, "Service watched/public") && strings.Contains(e.Note, "rule ") {
				if e.Regarding.UID == "" {
					return fmt.Errorf("the Event names no Tenant uid, so kubectl describe would not show it")
				}
				return nil
			}
		}
		return fmt.Errorf("no Refused Event on Tenant watched among %d events", len(list.Items))
	})
	var denied float64
	for i := range guards.Replicas() {
		m, err := guards.Metrics(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		denied += m.Sum("tenantguard_admission_decisions_total", map[string]string{"tenant": "watched", "result": "denied"})
	}
	if denied < 1 {
		t.Fatalf("tenantguard_admission_decisions_total{tenant=watched,result=denied} = %v", denied)
	}
}

// TestAuditReportsHostsServedFromTwoNamespaces: two excluded namespaces
// (which the webhook never judges) serve one host; the audit reports the
// later one, claims or no claims.
func TestAuditReportsHostsServedFromTwoNamespaces(t *testing.T) {
	ctx := context.Background()
	host := "shared.excluded.example.com"
	if err := admin.Create(ctx, ingress("kube-public", "first", host)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // creation timestamps have one-second resolution
	if err := admin.Create(ctx, ingress("kube-node-lease", "second", host)); err != nil {
		t.Fatal(err)
	}
	res, err := audit.Run(ctx, admin, policy.NewEngine(cfg))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range res.Findings {
		if f.Namespace == "kube-node-lease" && f.Name == "second" && f.Rule == policy.RuleHostOwnership {
			found = strings.Contains(f.Message, `namespace "kube-public"`)
		}
		if f.Namespace == "kube-public" && f.Name == "first" {
			t.Errorf("the older user is reported: %s", f)
		}
	}
	if !found {
		t.Fatalf("the audit does not report the host served from two namespaces: %v", res.Findings)
	}
	for _, ns := range []string{"kube-public", "kube-node-lease"} {
		if err := admin.Delete(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: map[string]string{"kube-public": "first", "kube-node-lease": "second"}[ns]}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCreateOfAnExistingNameClaimsNothing: the API server refuses a
// create of a name that exists (AlreadyExists) after the webhooks; the
// guard must not claim the new host for it.
func TestCreateOfAnExistingNameClaimsNothing(t *testing.T) {
	ctx := context.Background()
	ns := namespaces(t, "again", 1)[0]
	if err := admin.Create(ctx, ingress(ns, "same", "first.again.example.com")); err != nil {
		t.Fatal(err)
	}
	// A replica whose informer has not seen the object yet may still
	// claim (that claim is released after the grace period); once both
	// have, the repeat claims nothing.
	eventually(t, time.Minute, func() error {
		err := admin.Create(ctx, ingress(ns, "same", "second.again.example.com"))
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("repeat create: %v, want AlreadyExists", err)
		}
		hc := &v1alpha1.HostClaim{}
		err = admin.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(hosts.MustParse("second.again.example.com", v1alpha1.HostMatchExact))}, hc)
		if !apierrors.IsNotFound(err) {
			// Claimed by a replica that had not seen the object yet: it is
			// released after the grace period.
			return fmt.Errorf("the repeat of an existing name claimed its host (%v)", err)
		}
		return nil
	})
	checkInvariants(t)
}
