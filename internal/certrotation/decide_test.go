package certrotation

import (
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tenantguard/tenantguard/internal/webhook"
)

var (
	t0    = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	sched = schedule{
		validity: time.Hour, caValidity: 10 * time.Hour, fraction: 1.0 / 3,
		overlap: 6 * time.Minute, backdate: time.Minute,
		dnsNames: []string{"tg.ns.svc"}, ips: []net.IP{net.ParseIP("127.0.0.1")},
	}
)

// secretState is a Secret's data and annotations, as the API server
// stores them between passes.
type secretState struct {
	data map[string][]byte
	ann  map[string]string
}

// pass runs decide on a Secret at now, as the Rotator does, and returns
// what the Secret then holds.
func pass(t testing.TB, s schedule, now time.Time, st secretState, propagated bool) (secretState, material, []string) {
	t.Helper()
	m, prob := parse(st.data, st.ann)
	m, why, err := s.decide(now, m, prob, propagated)
	if err != nil {
		t.Fatal(err)
	}
	if len(why) == 0 {
		return st, m, nil
	}
	data, ann, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	next := secretState{data, ann}
	// What was written must read back whole.
	back, prob := parse(data, ann)
	if prob.trust != nil && m.ca != nil || prob.serving != nil || prob.next != nil {
		t.Fatalf("written Secret does not read back: trust %v, serving %v, next %v", prob.trust, prob.serving, prob.next)
	}
	if (back.next == nil) != (m.next == nil) {
		t.Fatalf("staged CA lost in the round trip")
	}
	return next, m, why
}

// check verifies that the Secret is whole: the serving certificate is
// signed by the signing CA, valid at now for the names, and the bundle
// trusts it.
func check(t *testing.T, now time.Time, m material) {
	t.Helper()
	for _, name := range append(sched.dnsNames, "127.0.0.1") {
		if _, err := m.leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool(m.trust), CurrentTime: now}); err != nil {
			t.Fatalf("serving certificate at %s for %s: %v", now, name, err)
		}
	}
	if m.ca != nil && m.leaf.CheckSignatureFrom(m.ca.Cert) != nil {
		t.Fatalf("serving certificate not signed by the signing CA")
	}
}

func TestDecideCreatesAndKeeps(t *testing.T) {
	st, m, why := pass(t, sched, t0, secretState{}, false)
	if len(why) == 0 || len(m.trust) != 1 || m.ca == nil || m.next != nil {
		t.Fatalf("empty Secret: why %q, %d CAs", why, len(m.trust))
	}
	check(t, t0, m)
	if got := m.ca.Cert.NotAfter.Sub(m.leaf.NotAfter); got != 9*time.Hour {
		t.Fatalf("CA outlives the serving certificate by %s, want 9h", got)
	}
	// Nothing is due for two thirds of the serving certificate's life.
	for _, at := range []time.Duration{0, time.Minute, 39 * time.Minute} {
		if _, _, why := pass(t, sched, t0.Add(at), st, false); len(why) != 0 {
			t.Fatalf("at +%s nothing is due, got %q", at, why)
		}
	}
}

func TestDecideRenewsServingCertificate(t *testing.T) {
	st, m0, _ := pass(t, sched, t0, secretState{}, false)
	// Lifetime 61m (1m backdate): a third is left at +40m20s.
	now := t0.Add(41 * time.Minute)
	_, m, why := pass(t, sched, now, st, false)
	if len(why) != 1 || !strings.Contains(why[0], "issued a serving certificate") {
		t.Fatalf("why %q", why)
	}
	if m.leaf.Equal(m0.leaf) || !m.ca.Cert.Equal(m0.ca.Cert) || len(m.trust) != 1 {
		t.Fatalf("want a new serving certificate from the same CA")
	}
	check(t, now, m)
}

// TestDecideRotatesCA walks a CA's life in five-minute passes and checks
// the order: staged while the old CA signs, promoted only once trusted and
// after the overlap, the old CA retired one overlap later; and that at
// every pass the bundle of the pass before (what a lagging API server
// holds) trusts the certificate served.
func TestDecideRotatesCA(t *testing.T) {
	st, m, _ := pass(t, sched, t0, secretState{}, false)
	first := m.ca.Cert
	var staged, promoted, retired time.Time
	prevTrust, prevLeaf := m.trust, m.leaf
	for now := t0; now.Before(t0.Add(12 * time.Hour)); now = now.Add(5 * time.Minute) {
		// The webhook configurations lag one pass behind.
		propagated := m.next != nil && containsDER(prevTrust, m.next.Cert.Raw)
		var why []string
		prevTrust = m.trust
		st, m, why = pass(t, sched, now, st, propagated)
		check(t, now, m)
		if _, err := m.leaf.Verify(x509.VerifyOptions{Roots: pool(prevTrust), CurrentTime: now}); err != nil {
			t.Fatalf("at %s the previous bundle does not trust the new certificate (%q): %v", now, why, err)
		}
		// A replica one pass behind serves the previous certificate.
		if _, err := prevLeaf.Verify(x509.VerifyOptions{Roots: pool(m.trust), CurrentTime: now}); err != nil {
			t.Fatalf("at %s the new bundle does not trust the previous certificate (%q): %v", now, why, err)
		}
		prevLeaf = m.leaf
		switch {
		case staged.IsZero() && m.next != nil:
			staged = now
			if !m.ca.Cert.Equal(first) || len(m.trust) != 2 {
				t.Fatalf("staging must keep the old CA signing, with both in the bundle")
			}
		case !staged.IsZero() && promoted.IsZero() && !m.ca.Cert.Equal(first):
			promoted = now
		case !promoted.IsZero() && retired.IsZero() && len(m.trust) == 1:
			retired = now
		}
	}
	if staged.IsZero() || promoted.IsZero() || retired.IsZero() {
		t.Fatalf("CA not rotated: staged %s, promoted %s, retired %s", staged, promoted, retired)
	}
	if promoted.Sub(staged) < sched.overlap || retired.Sub(promoted) < sched.overlap {
		t.Fatalf("overlap not kept: staged %s, promoted %s, retired %s", staged, promoted, retired)
	}
	// A third of the CA's life (10h + 1m) is left at about 6h40m.
	if want := t0.Add(6*time.Hour + 40*time.Minute); staged.Before(want) || staged.After(want.Add(5*time.Minute)) {
		t.Fatalf("staged at %s, want just after %s", staged, want)
	}
}

func TestDecidePromotion(t *testing.T) {
	st, _, _ := pass(t, sched, t0, secretState{}, false)
	stageAt := t0.Add(6*time.Hour + 45*time.Minute)
	st, m, _ := pass(t, sched, stageAt, st, false)
	if m.next == nil {
		t.Fatal("not staged")
	}
	old := m.ca.Cert
	for _, tc := range []struct {
		name       string
		at         time.Duration // after staging
		propagated bool
		promote    bool
	}{
		{"within the overlap", 5 * time.Minute, true, false},
		{"not trusted yet", 30 * time.Minute, false, false},
		{"trusted after the overlap", 7 * time.Minute, true, true},
		{"the signing CA expires within a serving validity", 2*time.Hour + 20*time.Minute, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := stageAt.Add(tc.at)
			_, m, why := pass(t, sched, now, st, tc.propagated)
			if promoted := !m.ca.Cert.Equal(old); promoted != tc.promote {
				t.Fatalf("promoted %v, want %v (%q)", promoted, tc.promote, why)
			}
			if tc.promote && (m.leaf.CheckSignatureFrom(m.ca.Cert) != nil || len(m.trust) != 2) {
				t.Fatal("promotion must issue a certificate of the new CA and keep the old CA in the bundle")
			}
			check(t, now, m)
		})
	}
}

func TestDecideRepairs(t *testing.T) {
	good, m0, _ := pass(t, sched, t0, secretState{}, false)
	with := func(key string, value []byte) secretState {
		d := map[string][]byte{}
		for k, v := range good.data {
			d[k] = v
		}
		if value == nil {
			delete(d, key)
		} else {
			d[key] = value
		}
		return secretState{d, good.ann}
	}
	other, err := webhook.SelfSignedCertificates([]string{"other.example"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	added := sched
	added.dnsNames = []string{"tg.ns.svc", "new.ns.svc"}
	// ca is what becomes of the CA: kept, new, or staged (the certificate
	// is kept until a new CA may sign).
	const kept, renewed, staged = "kept", "new", "staged"
	for _, tc := range []struct {
		name  string
		st    secretState
		sched schedule
		ca    string
		want  string // in the reasons
	}{
		{"garbage tls.crt", with(keyCert, []byte("garbage")), sched, kept, "serving certificate is unusable"},
		{"tls.key of another certificate", with(keyKey, other.Key), sched, kept, "private key does not match"},
		{"tls.crt and tls.key of another CA", with(keyCert, other.Cert), sched, kept, "serving certificate is unusable"},
		{"no tls.crt", with(keyCert, nil), sched, kept, "serving certificate is unusable"},
		{"a name added", good, added, kept, `lacks the name "new.ns.svc"`},
		{"garbage ca.crt", with(keyCACert, []byte("garbage")), sched, renewed, "no PEM certificate"},
		{"a key in ca.crt", with(keyCACert, other.Key), sched, renewed, "not CERTIFICATE"},
		{"garbage ca.key", with(keyCAKey, []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")), sched, staged, "ca.key"},
		{"ca.key of another CA", with(keyCAKey, other.Key), sched, staged, "no CA certificate in ca.crt holds its public key"},
		{"garbage ca-next.key", with(keyNextCAKey, []byte("garbage")), sched, kept, "dropped the staged CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0.Add(time.Minute)
			_, m, why := pass(t, tc.sched, now, tc.st, false)
			if !strings.Contains(strings.Join(why, "; "), tc.want) {
				t.Fatalf("reasons %q, want %q in them", why, tc.want)
			}
			var got string
			switch {
			case m.ca == nil && m.next != nil && m.leaf.Equal(m0.leaf):
				got = staged
			case m.ca != nil && m.ca.Cert.Equal(m0.ca.Cert):
				got = kept
			case m.ca != nil && len(m.trust) == 1:
				got = renewed
			}
			if got != tc.ca {
				t.Fatalf("CA %q, want %q (%q)", got, tc.ca, why)
			}
			check(t, now, m)
			for _, n := range tc.sched.dnsNames {
				if err := m.leaf.VerifyHostname(n); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	t.Run("everything expired", func(t *testing.T) {
		now := t0.Add(11 * time.Hour)
		_, m, why := pass(t, sched, now, good, false)
		if m.ca.Cert.Equal(m0.ca.Cert) || len(m.trust) != 1 || len(why) == 0 {
			t.Fatalf("want a new CA alone in the bundle: %q", why)
		}
		check(t, now, m)
	})
}

// TestDecideAdoptsSecretWithoutCAKey takes over a Secret that has a
// certificate and bundle but no CA key (written by hand or by an older
// install): its certificate serves on until a new CA may sign.
func TestDecideAdoptsSecretWithoutCAKey(t *testing.T) {
	certs, err := webhook.SelfSignedCertificates(sched.dnsNames, sched.ips, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	long := sched
	long.validity, long.caValidity = 4*time.Hour, 40*time.Hour
	now := time.Now()
	st := secretState{data: map[string][]byte{keyCACert: certs.CACert, keyCert: certs.Cert, keyKey: certs.Key}}
	st, m, why := pass(t, long, now, st, false)
	if m.ca != nil || m.next == nil || len(m.trust) != 2 || string(m.certPEM) != string(certs.Cert) {
		t.Fatalf("want the certificate kept and a new CA staged beside the old one: %q", why)
	}
	check(t, now, m)
	// Not trusted yet: the certificate stays, even when due.
	now = now.Add(18 * time.Hour)
	st, m, why = pass(t, long, now, st, false)
	if len(why) != 0 || string(m.certPEM) != string(certs.Cert) {
		t.Fatalf("want no change before the configurations trust the new CA: %q", why)
	}
	_, m, why = pass(t, long, now, st, true)
	if m.ca == nil || m.next != nil || m.leaf.CheckSignatureFrom(m.ca.Cert) != nil {
		t.Fatalf("want the staged CA to sign once trusted: %q", why)
	}
	check(t, now, m)
}

func pool(cas []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cas {
		p.AddCert(c)
	}
	return p
}
