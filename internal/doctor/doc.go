// Package doctor diagnoses why a machine cannot reach a (private) Kubernetes
// API server, the way kubectl would reach it, and says how to fix it.
//
// Run takes plain Options and returns a Report: six steps in order, each with
// a verdict (OK, WARN, FAIL, SKIP), the evidence and, where a step fails, Fix
// lines that name the exact change to make.
//
//  1. kubeconfig: the context, the server URL, where the CA comes from, the
//     kind of credentials (never their value) and a cluster proxy-url.
//  2. name: what kind of name the server is (AKS private FQDN, AKS public
//     FQDN, other), resolved through the system resolver and through each
//     explicitly given DNS server side by side (see Resolve).
//  3. proxy: the proxy kubectl uses for the URL, decided by Go's own code
//     (golang.org/x/net/http/httpproxy) on the variables read in kubectl's
//     order (upper case first), plus kubectl's NO_PROXY CIDR rule, and
//     which NO_PROXY entry matched or which to add (see DecideProxy).
//  4. tcp: a connection to the address, directly or through the proxy with
//     HTTP CONNECT (or SOCKS5), as kubectl would make it.
//  5. tls: the handshake, the chain against the kubeconfig CA, the name
//     against the certificate's SANs, and expiry.
//  6. api: the exec credential plugin, run in its own process group and
//     stopped with all it started when it hangs; /readyz (or /version), who
//     the credentials say you are (SelfSubjectReview) and, optionally,
//     whether you may list pods in a namespace (SelfSubjectAccessReview).
//
// Fix lines are written for the user's OS and shell (Options.Shell).
//
// Every network step is bounded by Options.Timeout. Secrets (tokens, client
// keys, passwords, proxy passwords) are never part of a Report.
//
// When the path kubectl takes today fails but another one works (the name
// resolves only on an explicitly given DNS server; the proxy cannot reach
// the server but a direct connection can), the later steps continue on the
// working path and say so, so that one run shows everything that is wrong.
package doctor
