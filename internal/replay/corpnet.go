package replay

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// CorpNet is the corporate network of the field report, on loopback: an
// on-premises DNS server that does not know the cluster's private zone, a
// DNS server inside Azure that does, and an HTTP proxy that cannot reach the
// private endpoint. `dev` uses it to replay problems 1 and 2 with the real
// doctor against the real local API server.
type CorpNet struct {
	// PrivateName is the API server's private FQDN; it resolves to 127.0.0.1
	// on AzureDNS only.
	PrivateName string
	// OnPremDNS and AzureDNS are ip:port of the two DNS servers.
	OnPremDNS, AzureDNS string
	// Proxy is the URL of the corporate proxy.
	Proxy   string
	closers []func()
}

// StartCorpNet starts the two DNS servers and the proxy on 127.0.0.1.
func StartCorpNet(privateName string) (*CorpNet, error) {
	c := &CorpNet{PrivateName: dns.Fqdn(strings.ToLower(privateName))}
	var err error
	if c.OnPremDNS, err = c.serveDNS(false); err != nil {
		c.Close()
		return nil, err
	}
	if c.AzureDNS, err = c.serveDNS(true); err != nil {
		c.Close()
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.Close()
		return nil, err
	}
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The proxy sits outside the VNet: private endpoints are out of reach.
		http.Error(w, fmt.Sprintf("proxy cannot connect to %s: no route to host", r.Host), http.StatusBadGateway)
	}), ReadHeaderTimeout: 5 * time.Second}
	go proxy.Serve(l)
	c.closers = append(c.closers, func() { proxy.Close() })
	c.Proxy = "http://" + l.Addr().String()
	c.PrivateName = strings.TrimSuffix(c.PrivateName, ".")
	return c, nil
}

// serveDNS answers the private name with 127.0.0.1 when knowsZone, and
// NXDOMAIN otherwise, like DNS servers with and without the private zone.
func (c *CorpNet) serveDNS(knowsZone bool) (string, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	name := c.PrivateName
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		found := len(q.Question) == 1 && strings.EqualFold(q.Question[0].Name, name) && knowsZone
		switch {
		case found && q.Question[0].Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: net.IPv4(127, 0, 0, 1)})
		case found:
			// Known name, no record of that type.
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	c.closers = append(c.closers, func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String(), nil
}

// Resolver returns a resolver that asks only the DNS server at addr, as a
// machine configured with it would.
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// Close stops the servers.
func (c *CorpNet) Close() {
	for _, f := range c.closers {
		f()
	}
}
