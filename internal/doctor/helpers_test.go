package doctor

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// dnsServer is a real DNS server (miekg/dns) on a loopback address. It
// answers the names in its table and NXDOMAIN for every other name, like an
// on-premises server that knows nothing of Azure's private zones.
type dnsServer struct {
	Addr string // IP:port
}

// startDNS serves records (name without trailing dot -> addresses) on
// ip:0. A name mapped to no address exists but has no A/AAAA record.
func startDNS(t *testing.T, ip string, records map[string][]string) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen udp on %s: %v", ip, err)
	}
	table := make(map[string][]netip.Addr)
	for name, addrs := range records {
		key := dns.Fqdn(strings.ToLower(name))
		table[key] = []netip.Addr{}
		for _, a := range addrs {
			table[key] = append(table[key], netip.MustParseAddr(a))
		}
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.RecursionAvailable = true // a recursive resolver, as clients expect
		q := req.Question[0]
		addrs, ok := table[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
			_ = w.WriteMsg(m)
			return
		}
		for _, a := range addrs {
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 30}
			switch {
			case q.Qtype == dns.TypeA && a.Is4():
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case q.Qtype == dns.TypeAAAA && a.Is6():
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
		_ = w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: mux, NotifyStartedFunc: func() { close(started) }}
	errc := make(chan error, 1)
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("dns server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	return &dnsServer{Addr: pc.LocalAddr().String()}
}

// silentDNS is a UDP socket that never answers: a DNS server that times out.
func silentDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// goResolver is a pure-Go resolver that sends every query to addr: the
// "system resolver" of a machine whose DNS server is addr.
func goResolver(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// connectProxy is a real HTTP CONNECT proxy on loopback. Targets in routes
// are reachable (the proxy dials the mapped address, as a proxy with its
// own DNS would); every other target gets status, like a corporate proxy
// that cannot reach a private endpoint.
type connectProxy struct {
	URL *url.URL

	mu      sync.Mutex
	targets []string
	auth    []string
}

func startConnectProxy(t *testing.T, status int, routes map[string]string) *connectProxy {
	t.Helper()
	p := &connectProxy{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		p.mu.Lock()
		p.targets = append(p.targets, r.Host)
		p.auth = append(p.auth, r.Header.Get("Proxy-Authorization"))
		p.mu.Unlock()
		upstream, ok := routes[r.Host]
		if !ok {
			http.Error(w, "cannot reach "+r.Host, status)
			return
		}
		back, err := net.Dial("tcp", upstream)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			back.Close()
			return
		}
		_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		go func() {
			_, _ = io.Copy(back, buf)
			back.Close()
		}()
		_, _ = io.Copy(conn, back)
		conn.Close()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	p.URL = &url.URL{Scheme: "http", Host: ln.Addr().String()}
	return p
}

func (p *connectProxy) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

func (p *connectProxy) Auth() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.auth...)
}

// startSOCKS5 is a minimal real SOCKS5 server that accepts no-auth clients
// and answers every CONNECT with reply code 4 (host unreachable).
func startSOCKS5(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, ln, func(c net.Conn) {
		go func() {
			defer c.Close()
			hdr := make([]byte, 2)
			if _, err := io.ReadFull(c, hdr); err != nil {
				return
			}
			if _, err := io.ReadFull(c, make([]byte, hdr[1])); err != nil {
				return
			}
			_, _ = c.Write([]byte{5, 0})
			req := make([]byte, 4)
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			var n int
			switch req[3] {
			case 1:
				n = 4
			case 4:
				n = 16
			case 3:
				l := make([]byte, 1)
				if _, err := io.ReadFull(c, l); err != nil {
					return
				}
				n = int(l[0])
			}
			if _, err := io.ReadFull(c, make([]byte, n+2)); err != nil {
				return
			}
			_, _ = c.Write([]byte{5, 4, 0, 1, 0, 0, 0, 0, 0, 0})
		}()
	})
}

// envMap is an environment for Options.Getenv.
func envMap(kv ...string) func(string) string {
	m := make(map[string]string)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// serve accepts connections on ln until the test ends, handing each to
// handle, and returns ln's address.
func serve(t *testing.T, ln net.Listener, handle func(net.Conn)) string {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
	return ln.Addr().String()
}
