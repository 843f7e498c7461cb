package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// AzureDNS is the address of Azure's recursive resolver. It answers
// private DNS zones linked to the VNet it is asked from, and it answers
// only from inside Azure.
const AzureDNS = "168.63.129.16"

// ParseDNSServer reads a --dns-server value: an IP address, optionally with
// a port ("10.0.0.4", "10.0.0.4:53", "fd00::4", "[fd00::4]:53"). The port
// defaults to 53. Host names are refused: the point is to ask a specific
// server.
func ParseDNSServer(s string) (netip.AddrPort, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.AddrPort{}, errors.New("empty DNS server: give an IP or IP:port")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.AddrPort{}, fmt.Errorf("DNS server %q: zones are not supported", s)
		}
		return netip.AddrPortFrom(a.Unmap(), 53), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("DNS server %q is not an IP or IP:port", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("DNS server %q: %q is not an IP address", s, host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("DNS server %q: port %q is not 1-65535", s, port)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

// IPClass is the kind of network an address belongs to.
type IPClass string

// The address classes.
const (
	IPLoopback    IPClass = "loopback"
	IPPrivate     IPClass = "private"    // RFC 1918, fc00::/7
	IPShared      IPClass = "shared"     // 100.64.0.0/10 (carrier-grade NAT)
	IPLinkLocal   IPClass = "link-local" // 169.254.0.0/16, fe80::/10
	IPUnspecified IPClass = "unspecified"
	IPPublic      IPClass = "public"
)

var sharedPrefix = netip.MustParsePrefix("100.64.0.0/10")

// ClassifyIP says which kind of network a is in.
func ClassifyIP(a netip.Addr) IPClass {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return IPLoopback
	case a.IsPrivate():
		return IPPrivate
	case sharedPrefix.Contains(a):
		return IPShared
	case a.IsLinkLocalUnicast():
		return IPLinkLocal
	case a.IsUnspecified():
		return IPUnspecified
	default:
		return IPPublic
	}
}

// Outcome is how a resolver answered.
type Outcome string

// The outcomes of a lookup.
const (
	OutcomeAnswer Outcome = "answer"
	// OutcomeNXDOMAIN: the name does not exist on that server.
	OutcomeNXDOMAIN Outcome = "nxdomain"
	// OutcomeNoRecords: the name exists but has no A or AAAA record.
	OutcomeNoRecords Outcome = "no-records"
	// OutcomeNotFound: the system resolver found nothing; Go does not
	// tell NXDOMAIN from no records.
	OutcomeNotFound Outcome = "not-found"
	OutcomeTimeout  Outcome = "timeout"
	// OutcomeError: SERVFAIL, REFUSED, an unreachable server, ...
	OutcomeError Outcome = "error"
)

// Address is a resolved address and its class.
type Address struct {
	IP    string  `json:"ip"`
	Class IPClass `json:"class"`

	addr netip.Addr
}

// Lookup is one resolver's answer for the API server name.
type Lookup struct {
	// Resolver is "system" or the server's IP:port.
	Resolver  string    `json:"resolver"`
	Outcome   Outcome   `json:"outcome"`
	Addresses []Address `json:"addresses,omitempty"`
	// CNAMEs is the alias chain a DNS server returned.
	CNAMEs []string `json:"cnames,omitempty"`
	// Detail is the response code or the error.
	Detail string `json:"detail,omitempty"`

	server netip.AddrPort // zero for the system resolver
}

// Label names the resolver for a person.
func (l Lookup) Label() string {
	if l.Resolver == "system" {
		return "system resolver"
	}
	return "DNS server " + l.Resolver
}

// Describe is the answer in a few words.
func (l Lookup) Describe() string {
	switch l.Outcome {
	case OutcomeAnswer:
		var parts []string
		for _, a := range l.Addresses {
			parts = append(parts, a.IP+" ("+string(a.Class)+")")
		}
		s := strings.Join(parts, ", ")
		if len(l.CNAMEs) > 0 {
			s += " via CNAME " + strings.Join(l.CNAMEs, " -> ")
		}
		return s
	case OutcomeNXDOMAIN:
		return "NXDOMAIN (no such name)"
	case OutcomeNoRecords:
		return "no A or AAAA record (" + l.Detail + ")"
	case OutcomeNotFound:
		return l.Detail
	case OutcomeTimeout:
		return "no answer within " + l.Detail
	default:
		return "error: " + l.Detail
	}
}

func (l Lookup) sameAddresses(o Lookup) bool {
	a, b := l.ips(), o.ips()
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func (l Lookup) ips() []string {
	out := make([]string, len(l.Addresses))
	for i, a := range l.Addresses {
		out[i] = a.IP
	}
	return out
}

// ResolveInput says how to resolve a name.
type ResolveInput struct {
	// System is the resolver kubectl uses (net.DefaultResolver in
	// production). Tests point a Go resolver at a loopback DNS server.
	System *net.Resolver
	// Servers are DNS servers to ask directly (A and AAAA, recursion
	// desired), side by side with the system resolver.
	Servers []netip.AddrPort
	// Timeout bounds each resolver's lookup.
	Timeout time.Duration
}

// Resolve asks the system resolver and every server for host's addresses,
// all at once, each bounded by in.Timeout. The result has the system
// resolver first, then the servers in order.
func Resolve(ctx context.Context, host string, in ResolveInput) []Lookup {
	out := make([]Lookup, 1+len(in.Servers))
	var wg sync.WaitGroup
	wg.Go(func() { out[0] = lookupSystem(ctx, in.System, host, in.Timeout) })
	for i, srv := range in.Servers {
		wg.Go(func() { out[i+1] = lookupServer(ctx, srv, host, in.Timeout) })
	}
	wg.Wait()
	return out
}

func lookupSystem(ctx context.Context, r *net.Resolver, host string, timeout time.Duration) Lookup {
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	l := Lookup{Resolver: "system"}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(addrs) > 0:
		l.Outcome = OutcomeAnswer
		for _, a := range addrs {
			l.Addresses = append(l.Addresses, newAddress(a))
		}
	case err == nil:
		l.Outcome, l.Detail = OutcomeNotFound, "no addresses"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		l.Outcome, l.Detail = OutcomeNotFound, "no such host"
	case isTimeout(err):
		l.Outcome, l.Detail = OutcomeTimeout, timeout.String()
	default:
		l.Outcome, l.Detail = OutcomeError, err.Error()
	}
	return l
}

func newAddress(a netip.Addr) Address {
	a = a.Unmap()
	return Address{IP: a.String(), Class: ClassifyIP(a), addr: a}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// lookupServer asks one DNS server for A and AAAA records, in parallel.
// NXDOMAIN on either question means the name does not exist there.
func lookupServer(ctx context.Context, server netip.AddrPort, host string, timeout time.Duration) Lookup {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		msg *dns.Msg
		err error
	}
	var a, aaaa result
	var wg sync.WaitGroup
	wg.Go(func() { a.msg, a.err = exchange(ctx, server, host, dns.TypeA, timeout) })
	wg.Go(func() { aaaa.msg, aaaa.err = exchange(ctx, server, host, dns.TypeAAAA, timeout) })
	wg.Wait()

	l := Lookup{Resolver: server.String(), server: server}
	for _, r := range []result{a, aaaa} {
		if r.msg == nil {
			continue
		}
		for _, rr := range r.msg.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(rr.A); ok {
					l.Addresses = append(l.Addresses, newAddress(ip))
				}
			case *dns.AAAA:
				if ip, ok := netip.AddrFromSlice(rr.AAAA); ok {
					l.Addresses = append(l.Addresses, newAddress(ip))
				}
			case *dns.CNAME:
				if t := strings.TrimSuffix(rr.Target, "."); !slices.Contains(l.CNAMEs, t) {
					l.CNAMEs = append(l.CNAMEs, t)
				}
			}
		}
	}
	rcode := func(r result) int {
		if r.msg == nil {
			return -1
		}
		return r.msg.Rcode
	}
	switch {
	case len(l.Addresses) > 0:
		l.Outcome = OutcomeAnswer
	case rcode(a) == dns.RcodeNameError || rcode(aaaa) == dns.RcodeNameError:
		l.Outcome, l.Detail = OutcomeNXDOMAIN, "NXDOMAIN"
	case rcode(a) == dns.RcodeSuccess && rcode(aaaa) == dns.RcodeSuccess:
		l.Outcome, l.Detail = OutcomeNoRecords, "NOERROR, empty answer"
	case isTimeout(a.err) || isTimeout(aaaa.err):
		l.Outcome, l.Detail = OutcomeTimeout, timeout.String()
	case a.err != nil:
		l.Outcome, l.Detail = OutcomeError, a.err.Error()
	case aaaa.err != nil:
		l.Outcome, l.Detail = OutcomeError, aaaa.err.Error()
	default:
		l.Outcome, l.Detail = OutcomeError, dns.RcodeToString[rcode(a)]
	}
	return l
}

// exchange sends one question over UDP and retries over TCP when the
// answer is truncated.
func exchange(ctx context.Context, server netip.AddrPort, host string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(host), qtype)
	m.RecursionDesired = true
	c := &dns.Client{Net: "udp", Timeout: timeout}
	r, _, err := c.ExchangeContext(ctx, m, server.String())
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, server.String())
	}
	return r, err
}

// nameResult is what the name step decided: the step, and the address the
// later steps dial (with where it came from).
type nameResult struct {
	step Step
	// addrs are the addresses to dial directly; from the system resolver
	// when it answered, else from the first DNS server that did.
	addrs []netip.Addr
	// source says where addrs came from; hypothetical is set when that is
	// not what kubectl would use today.
	source       string
	hypothetical bool
}

// nameStep judges the lookups. viaProxy is set when kubectl sends the name
// to a proxy, which resolves it itself: a local failure is then a warning.
func nameStep(name NameInfo, lookups []Lookup, viaProxy bool) nameResult {
	s := Step{Name: StepName}
	if name.Kind == NameIP {
		a, _ := netip.ParseAddr(name.Host)
		s.Status = StatusOK
		s.Summary = fmt.Sprintf("nothing to resolve: the server is the IP address %s (%s)", name.Host, ClassifyIP(a))
		return nameResult{step: s, addrs: []netip.Addr{a.Unmap()}, source: "the server URL"}
	}
	s.evidence("%s is %s", name.Host, name.Describe())
	for _, l := range lookups {
		s.evidence("%-24s %s", l.Label()+":", l.Describe())
	}
	system := lookups[0]
	var other *Lookup
	for i := range lookups[1:] {
		if lookups[i+1].Outcome == OutcomeAnswer {
			other = &lookups[i+1]
			break
		}
	}
	if system.Outcome == OutcomeAnswer {
		res := nameResult{addrs: addrsOf(system), source: "the system resolver"}
		s.Status = StatusOK
		s.Summary = fmt.Sprintf("%s resolves to %s on the system resolver", name.Host, system.Describe())
		for _, l := range lookups[1:] {
			if l.Outcome == OutcomeAnswer && !l.sameAddresses(system) {
				s.Status = StatusWarn
				s.evidence("resolvers disagree: kubectl uses the system resolver's %s, %s answers %s", strings.Join(system.ips(), ", "), l.Label(), strings.Join(l.ips(), ", "))
				s.fix("make the DNS servers this machine uses return the same address as %s (a stale hosts-file entry or a split-horizon zone is the usual cause)", l.Label())
			}
		}
		if name.Kind == NameAKSPublic && hasClass(system, IPPrivate) {
			s.evidence("the public FQDN of a private cluster resolves to the private endpoint IP: this machine still needs a network route to it (VPN, ExpressRoute or peering)")
		}
		if name.Kind == NameAKSPrivate && hasClass(system, IPPublic) {
			s.Status = StatusWarn
			s.evidence("a private FQDN resolved to a public address: something other than the cluster's private DNS zone answers for %s", name.PrivateZone)
		}
		res.step = s
		return res
	}

	s.Status = StatusFail
	if viaProxy {
		s.Status = StatusWarn
		s.evidence("kubectl sends the name to the proxy, which resolves it itself; this machine needs the name once it bypasses the proxy")
	}
	s.Summary = fmt.Sprintf("%s does not resolve on the system resolver (%s)", name.Host, system.Describe())
	if system.Outcome == OutcomeTimeout {
		s.fix("the DNS servers this machine uses do not answer: check they are reachable (Linux: resolvectl status or /etc/resolv.conf; Windows: Get-DnsClientServerAddress)")
	}
	res := nameResult{}
	if other != nil {
		s.Summary += fmt.Sprintf(" but resolves on %s to %s", other.Label(), other.Describe())
		res.addrs, res.source, res.hypothetical = addrsOf(*other), other.Label(), true
	}
	switch name.Kind {
	case NameAKSPrivate:
		s.fix("%s", forwarderFix(name, other))
		s.fix("%s", publicFQDNFix())
		if other != nil {
			s.fix("%s", hostsFix(name.Host, other))
		}
		if len(lookups) == 1 {
			s.evidence("to compare, run from a VM in the cluster's VNet: tenantguard doctor --dns-server %s, or here with --dns-server <your DNS forwarder in Azure>", AzureDNS)
		}
	case NameAKSPublic:
		if other != nil {
			s.fix("the public FQDN exists but your DNS servers do not resolve it: let them resolve public names under %s (forward the zone to a resolver with internet access)", aksDomain)
			s.fix("%s", hostsFix(name.Host, other))
		} else {
			s.fix("no resolver knows the public FQDN: the cluster may have it disabled (az aks update -g <resource-group> -n <cluster> --enable-public-fqdn), or the name is wrong (az aks show -g <resource-group> -n <cluster> --query fqdn)")
		}
	default:
		if other != nil {
			s.fix("%s", hostsFix(name.Host, other))
		} else {
			s.fix("check the server name in the kubeconfig, or pass --dns-server IP to compare with the DNS server that should know it")
		}
	}
	res.step = s
	return res
}

func addrsOf(l Lookup) []netip.Addr {
	out := make([]netip.Addr, len(l.Addresses))
	for i, a := range l.Addresses {
		out[i] = a.addr
	}
	return out
}

func hasClass(l Lookup, c IPClass) bool {
	for _, a := range l.Addresses {
		if a.Class == c {
			return true
		}
	}
	return false
}

// forwarderFix is the conditional forwarder for the AKS private zone, in
// BIND and Windows DNS syntax. The forwarder is the DNS server that
// answered, unless it is Azure DNS itself, which answers only inside Azure.
func forwarderFix(name NameInfo, answered *Lookup) string {
	target, bindTarget, note := "<resolver-in-vnet>", "<resolver-in-vnet>", ""
	if answered != nil && answered.server.Addr().String() != AzureDNS {
		ip := answered.server.Addr().String()
		target, bindTarget = ip, ip
		if p := answered.server.Port(); p != 53 {
			bindTarget = fmt.Sprintf("%s port %d", ip, p)
			note = fmt.Sprintf(" (Windows DNS forwards to port 53 only; %s listens on %d)", ip, p)
		}
	}
	zone := name.PrivateZone
	return fmt.Sprintf("forward the zone %s from the DNS servers this machine uses to a resolver inside a VNet linked to the cluster's private DNS zone "+
		"(an Azure DNS Private Resolver inbound endpoint, or a DNS forwarder VM that asks Azure DNS %s, which answers only inside Azure):\n"+
		"BIND (named.conf): zone %q { type forward; forward only; forwarders { %s; }; };\n"+
		"Windows DNS: Add-DnsServerConditionalForwarderZone -Name %q -MasterServers %s -ReplicationScope Forest%s",
		zone, AzureDNS, zone, bindTarget, zone, target, note)
}

func publicFQDNFix() string {
	return "or use the cluster's public FQDN, which public DNS answers with the private IP:\n" +
		"az aks update -g <resource-group> -n <cluster> --enable-public-fqdn\n" +
		"az aks get-credentials -g <resource-group> -n <cluster> --public-fqdn"
}

func hostsFix(host string, answered *Lookup) string {
	return fmt.Sprintf("or, on this machine only (breaks silently when the IP changes), add to /etc/hosts (Windows: C:\\Windows\\System32\\drivers\\etc\\hosts):\n%s %s",
		answered.Addresses[0].IP, strings.TrimSuffix(host, "."))
}
