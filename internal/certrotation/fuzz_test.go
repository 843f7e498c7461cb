package certrotation

import (
	"testing"
	"time"
)

// FuzzDecide feeds arbitrary Secret contents to parse and decide: they
// must never panic, and what decide returns must always read back whole.
// testdata/fuzz/FuzzDecide holds two whole Secrets as seeds: one with a
// signing CA, one with a staged CA too. (Seeds made here would differ
// between the fuzzing processes: keys are random.)
func FuzzDecide(f *testing.F) {
	f.Add([]byte("garbage"), []byte{}, []byte("-----BEGIN EC PRIVATE KEY-----\n\n-----END EC PRIVATE KEY-----\n"), []byte(nil), []byte("x"), "not a time")
	f.Fuzz(func(t *testing.T, caCert, caKey, nextKey, cert, key []byte, nextSince string) {
		data := map[string][]byte{keyCACert: caCert, keyCAKey: caKey, keyCert: cert, keyKey: key}
		if len(nextKey) > 0 {
			data[keyNextCAKey] = nextKey
		}
		ann := map[string]string{annNextCASince: nextSince, annCASince: t0.Format(time.RFC3339)}
		now := t0.Add(7 * time.Hour)
		m, prob := parse(data, ann)
		m, _, err := sched.decide(now, m, prob, true)
		if err != nil {
			t.Fatal(err)
		}
		out, outAnn, err := m.encode()
		if err != nil {
			t.Fatal(err)
		}
		back, prob := parse(out, outAnn)
		if prob.serving != nil || prob.next != nil || (m.ca != nil) != (back.ca != nil) {
			t.Fatalf("decide's result does not read back whole: serving %v, next %v", prob.serving, prob.next)
		}
		if _, why := servingOK(now, back); why != "" {
			t.Fatalf("decide's serving certificate is not usable: %s", why)
		}
	})
}

// servingOK checks what a Rotator would serve.
func servingOK(now time.Time, m material) (bool, string) {
	why, expiring := sched.servingReason(now, m, problems{})
	if why != "" && !expiring {
		return false, why
	}
	return true, ""
}
