// Package certrotation keeps the admission webhook's certificates inside
// the cluster: a CA and a serving certificate in a Secret, the serving
// certificate and key in the webhook server's certificate directory, and
// the CA bundle in the webhook configurations. It renews them well before
// they expire, without a refused request.
//
// Every replica runs a Rotator; they share only the API server. On each
// pass (every Interval) a Rotator:
//
//  1. reads the Secret. If it is missing, it creates it with a new CA
//     (valid ten times the serving validity) and a serving certificate for
//     DNSNames and IPs. A replica that loses the race to create or to
//     update (AlreadyExists, or a Conflict on the resourceVersion it read)
//     reads the winner's Secret and uses it.
//  2. replaces what is due, in one update: the serving certificate when
//     less than RefreshFraction of its lifetime is left, or it lacks a
//     name, or it is unusable; the CA in three stages (below).
//  3. writes ca.crt into the caBundle of every webhook of the named
//     Validating and Mutating webhook configurations where it differs. A
//     configuration that does not exist is logged and looked for again on
//     the next pass.
//  4. writes tls.crt and tls.key into CertDir when they differ, each
//     through a temporary file and a rename; controller-runtime's
//     certificate watcher in the webhook server reloads them.
//
// A CA is replaced in three stages an Overlap apart, so that neither a
// lagging API server nor a replica that has not read the Secret yet meets
// a certificate it cannot verify. When less than RefreshFraction of the
// CA's life is left, a new CA joins ca.crt while the old one goes on
// signing (staged). Once it has been staged for the Overlap and every
// named webhook configuration trusts it, it signs a new serving
// certificate (promoted); if the old CA would expire first, it is
// promoted anyway. One Overlap later the old CA leaves ca.crt (retired).
//
// A Secret that cannot be read whole is repaired, with a log line that
// says what was wrong: an unusable serving certificate is reissued by the
// CA, which the API server already trusts. An unreadable ca.crt is
// replaced by a new CA; until the other replicas read the Secret, the API
// server cannot verify them. A Secret with a valid certificate but
// without ca.key (written by hand or by an older install) keeps serving
// that certificate while a new CA is staged beside its CA, so adopting it
// refuses nothing.
//
// The Secret holds ca.crt (the bundle), ca.key (the signing CA's key),
// ca-next.key (a staged CA's key), tls.crt and tls.key; the annotations
// tenantguard.dev/ca-signing-since and tenantguard.dev/ca-next-since
// record when the CA began to sign and when the next one was staged.
//
// Ready fails until CertDir holds the certificate last read from the
// Secret. Call Sync once before the webhook server starts: it needs the
// files to start.
package certrotation
