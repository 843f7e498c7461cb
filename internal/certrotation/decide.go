package certrotation

import (
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/tenantguard/tenantguard/internal/webhook"
)

// schedule is when and for what names certificates are made.
type schedule struct {
	validity   time.Duration // of a serving certificate
	caValidity time.Duration
	// fraction of a certificate's lifetime left at which it is replaced.
	fraction float64
	// overlap is how long a new CA is in the bundle before it signs, and
	// how long an old CA stays in the bundle after it stopped signing.
	overlap time.Duration
	// backdate is how far NotBefore lies before now, for clock skew.
	backdate time.Duration
	dnsNames []string
	ips      []net.IP
}

// decide returns what the Secret should hold at now, given what it holds
// (m, with what could not be used in prob), and why it changed; no
// reasons means it stays as it is. propagated says whether every webhook
// configuration already trusts m.next.
//
// The order of a CA rotation is what keeps every request answered while
// the API server lags behind the Secret: a new CA is first added to the
// bundle (staged) while the old one goes on signing; it signs only after
// it has been staged for the overlap and every webhook configuration
// trusts it (promoted); the old CA leaves the bundle one overlap later,
// once every replica serves a certificate of the new one (retired).
func (s schedule) decide(now time.Time, m material, prob problems, propagated bool) (material, []string, error) {
	var why []string
	note := func(format string, args ...any) { why = append(why, fmt.Sprintf(format, args...)) }

	if prob.next != nil {
		note("dropped the staged CA: %v", prob.next)
	}
	if m.next != nil && !now.Before(m.next.Cert.NotAfter) {
		note("dropped the staged CA: it expired at %s before the webhook configurations trusted it", m.next.Cert.NotAfter.UTC().Format(time.RFC3339))
		m.next, m.nextSince = nil, time.Time{}
	}
	if live := slices.DeleteFunc(slices.Clone(m.trust), func(c *x509.Certificate) bool { return !now.Before(c.NotAfter) }); len(live) < len(m.trust) {
		note("dropped %d expired CA(s) from the bundle", len(m.trust)-len(live))
		m.trust = live
	}
	if m.ca != nil && !now.Before(m.ca.Cert.NotAfter) {
		note("the signing CA expired at %s", m.ca.Cert.NotAfter.UTC().Format(time.RFC3339))
		m.ca = nil
	}

	// Promote a staged CA once the API server had the overlap to trust it,
	// or when the signing CA is about to expire and waiting longer would
	// break more than it saves.
	promoted := false
	if m.next != nil && now.Sub(m.nextSince) >= s.overlap {
		switch {
		case propagated:
			note("the CA staged at %s is trusted by the webhook configurations: it signs from now on", m.nextSince.UTC().Format(time.RFC3339))
			promoted = true
		case m.ca != nil && m.ca.Cert.NotAfter.Sub(now) < s.validity:
			note("the signing CA expires at %s: the staged CA signs from now on, although not every webhook configuration trusts it yet", m.ca.Cert.NotAfter.UTC().Format(time.RFC3339))
			promoted = true
		}
		if promoted {
			m.ca, m.caSince, m.next, m.nextSince = m.next, now, nil, time.Time{}
		}
	}

	servingWhy, expiring := s.servingReason(now, m, prob)
	if promoted {
		servingWhy = "the new CA signs"
	}
	if m.ca == nil && servingWhy != "" && !expiring {
		// Nothing can sign, and the certificate cannot be kept: start over.
		fresh, err := s.fresh(now)
		if err != nil {
			return m, nil, err
		}
		cause := "the signing CA expired"
		if prob.trust != nil {
			cause = prob.trust.Error()
		}
		note("%s, and no CA can sign a new one (%s): made a new CA and serving certificate", servingWhy, cause)
		return fresh, why, nil
	}

	// Stage the next CA when the signing one has little life left, or
	// at once when there is none (a Secret without ca.key: its
	// certificate is kept until the new CA may sign).
	if m.next == nil && (m.ca == nil || remaining(now, m.ca.Cert.NotBefore, m.ca.Cert.NotAfter) < s.fraction) {
		next, err := webhook.NewCA(now.Add(-s.backdate), now.Add(s.caValidity))
		if err != nil {
			return m, nil, err
		}
		m.next, m.nextSince = &next, now
		m.trust = append(m.trust, next.Cert)
		if m.ca == nil {
			note("the Secret holds no usable CA (%v): kept its certificate and bundle, and staged a new CA", prob.trust)
		}
		note("staged a new CA valid until %s; it signs once the webhook configurations trust it", next.Cert.NotAfter.UTC().Format(time.RFC3339))
	}

	if m.next == nil && m.ca != nil && len(m.trust) > 1 && now.Sub(m.caSince) >= s.overlap {
		note("retired %d old CA(s) from the bundle", len(m.trust)-1)
		m.trust = []*x509.Certificate{m.ca.Cert}
	}

	if servingWhy != "" && m.ca != nil {
		notAfter := now.Add(s.validity)
		if notAfter.After(m.ca.Cert.NotAfter) {
			notAfter = m.ca.Cert.NotAfter
		}
		cert, key, err := m.ca.Issue(s.dnsNames, s.ips, now.Add(-s.backdate), notAfter)
		if err == nil {
			err = m.setServing(cert, key)
		}
		if err != nil {
			return m, nil, err
		}
		note("%s: issued a serving certificate valid until %s", servingWhy, notAfter.UTC().Format(time.RFC3339))
	}
	return m, why, nil
}

// fresh is a new CA and a serving certificate signed by it.
func (s schedule) fresh(now time.Time) (material, error) {
	ca, err := webhook.NewCA(now.Add(-s.backdate), now.Add(s.caValidity))
	if err != nil {
		return material{}, err
	}
	m := material{trust: []*x509.Certificate{ca.Cert}, ca: &ca, caSince: now}
	cert, key, err := ca.Issue(s.dnsNames, s.ips, now.Add(-s.backdate), now.Add(s.validity))
	if err == nil {
		err = m.setServing(cert, key)
	}
	if err != nil {
		return material{}, err
	}
	return m, nil
}

// servingReason says why the serving certificate must be replaced, or ""
// if it may stay. expiring is set when it is still good, only due for
// renewal.
func (s schedule) servingReason(now time.Time, m material, prob problems) (why string, expiring bool) {
	switch {
	case prob.serving != nil:
		return fmt.Sprintf("the serving certificate is unusable (%v)", prob.serving), false
	case m.leaf == nil:
		return "there is no serving certificate", false
	case !now.Before(m.leaf.NotAfter):
		return fmt.Sprintf("the serving certificate expired at %s", m.leaf.NotAfter.UTC().Format(time.RFC3339)), false
	case m.ca != nil && m.leaf.CheckSignatureFrom(m.ca.Cert) != nil:
		return "the serving certificate is not signed by the signing CA", false
	case m.ca == nil && !signedByAny(m.leaf, m.trust):
		return "the serving certificate is not signed by a CA of the bundle", false
	case remaining(now, m.leaf.NotBefore, m.leaf.NotAfter) < s.fraction:
		return fmt.Sprintf("the serving certificate expires at %s", m.leaf.NotAfter.UTC().Format(time.RFC3339)), true
	}
	for _, n := range s.dnsNames {
		if !slices.Contains(m.leaf.DNSNames, n) {
			return fmt.Sprintf("the serving certificate lacks the name %q", n), false
		}
	}
	for _, ip := range s.ips {
		if !slices.ContainsFunc(m.leaf.IPAddresses, ip.Equal) {
			return fmt.Sprintf("the serving certificate lacks the address %s", ip), false
		}
	}
	return "", false
}

func signedByAny(leaf *x509.Certificate, cas []*x509.Certificate) bool {
	return slices.ContainsFunc(cas, func(ca *x509.Certificate) bool { return leaf.CheckSignatureFrom(ca) == nil })
}

// remaining is the fraction of the lifetime notBefore..notAfter left at now.
func remaining(now, notBefore, notAfter time.Time) float64 {
	life := notAfter.Sub(notBefore)
	if life <= 0 {
		return 0
	}
	return float64(notAfter.Sub(now)) / float64(life)
}
