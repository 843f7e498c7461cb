package doctor

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/proxy"
)

// Connection is the outcome of the tcp step.
type Connection struct {
	// Via is "direct" or "proxy".
	Via string `json:"via"`
	// Proxy is the proxy used (password redacted).
	Proxy string `json:"proxy,omitempty"`
	// Address is what was dialed: the server's IP:port, or the proxy.
	Address string `json:"address,omitempty"`
	// Target is the host:port the proxy was asked to connect to.
	Target string `json:"target,omitempty"`
	// IPClass is the class of the server IP dialed directly.
	IPClass IPClass `json:"ipClass,omitempty"`
	OK      bool    `json:"ok"`
	// ProxyStatus is the proxy's answer to CONNECT when it was not 200.
	ProxyStatus int    `json:"proxyStatus,omitempty"`
	Error       string `json:"error,omitempty"`
	// Hypothetical is set when this is not the path kubectl takes today
	// (a direct connection tried after the proxy failed, or an address
	// from a DNS server the system resolver does not use).
	Hypothetical bool `json:"hypothetical,omitempty"`
	// Fallback is the direct connection tried after the proxy failed.
	Fallback *Connection `json:"fallback,omitempty"`

	err error
}

// ProxyStatusError is a proxy's non-200 answer to CONNECT.
type ProxyStatusError struct {
	StatusCode int
	Status     string
}

func (e *ProxyStatusError) Error() string { return "proxy answered CONNECT with " + e.Status }

// DialDirect connects to port on the first of addrs that accepts, trying
// them in order, all within ctx. It returns the address that answered.
func DialDirect(ctx context.Context, addrs []netip.Addr, port string) (net.Conn, netip.AddrPort, error) {
	var d net.Dialer
	var errs []error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, mustPort(port))
		conn, err := d.DialContext(ctx, "tcp", ap.String())
		if err == nil {
			return conn, ap, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, netip.AddrPort{}, errors.New("no address to connect to")
	}
	return nil, netip.AddrPort{}, errors.Join(errs...)
}

func mustPort(p string) uint16 {
	var n uint16
	_, _ = fmt.Sscan(p, &n)
	return n
}

// DialProxy opens a tunnel to target (host:port) through proxyURL, the way
// Go's http.Transport does for an https URL: http and https proxies get an
// HTTP CONNECT (Basic Proxy-Authorization from the URL's user info; TLS to
// an https proxy), socks5 and socks5h proxies a SOCKS5 CONNECT with the
// host name. The proxy resolves the name, not this machine. A non-200
// answer to CONNECT is a *ProxyStatusError.
func DialProxy(ctx context.Context, proxyURL *url.URL, target string) (net.Conn, error) {
	host, port := canonicalHostPort(proxyURL)
	addr := net.JoinHostPort(host, port)
	var d net.Dialer
	switch proxyURL.Scheme {
	case "socks5", "socks5h":
		var auth *proxy.Auth
		if u := proxyURL.User; u != nil {
			auth = &proxy.Auth{User: u.Username()}
			auth.Password, _ = u.Password()
		}
		sd, err := proxy.SOCKS5("tcp", addr, auth, &d)
		if err != nil {
			return nil, err
		}
		return sd.(proxy.ContextDialer).DialContext(ctx, "tcp", target)
	case "http", "https":
	default:
		return nil, fmt.Errorf("proxy scheme %q is not supported by Go (use http, https, socks5 or socks5h)", proxyURL.Scheme)
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to the proxy: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if proxyURL.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: host})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS to the proxy: %w", err)
		}
		conn = tc
	}
	hdr := make(http.Header)
	if u := proxyURL.User; u != nil {
		pw, _ := u.Password()
		hdr.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: hdr}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	br := bufio.NewReader(io.LimitReader(conn, 1<<20))
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read the answer to CONNECT: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, &ProxyStatusError{StatusCode: resp.StatusCode, Status: resp.Status}
	}
	_ = conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 { // the server spoke first; keep what was read
		return &bufferedConn{Conn: conn, r: io.MultiReader(io.LimitReader(br, int64(br.Buffered())), conn)}, nil
	}
	return conn, nil
}

type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// route is the path the tls and api steps use.
type route struct {
	proxy *url.URL       // nil: direct
	addr  netip.AddrPort // the server address dialed directly
	// hypothetical says why this path is not kubectl's today, or "".
	hypothetical string
}

func (r route) describe() string {
	if r.proxy != nil {
		return "a tunnel through the proxy " + r.proxy.Redacted()
	}
	return "a direct connection to " + r.addr.String()
}

// tcpStep connects as kubectl would. When the proxy fails and an address
// is known, it also tries a direct connection, to tell whether bypassing
// the proxy would work. It returns the open connection (nil on failure) for
// the tls step.
func tcpStep(ctx context.Context, t *Target, d *ProxyDecision, nr nameResult, timeout time.Duration, sh Shell) (Step, *Connection, net.Conn, *route) {
	s := Step{Name: StepTCP}
	if d.UsesProxy() {
		c := &Connection{Via: "proxy", Proxy: d.Proxy, Target: t.HostPort(), Address: proxyAddr(d.ProxyURL())}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		conn, err := DialProxy(pctx, d.ProxyURL(), t.HostPort())
		cancel()
		if err == nil {
			c.OK = true
			s.Status = StatusOK
			s.Summary = fmt.Sprintf("connected to %s through the proxy %s (CONNECT %s: 200)", t.HostPort(), d.Proxy, t.HostPort())
			if strings.HasPrefix(d.ProxyURL().Scheme, "socks") {
				s.Summary = fmt.Sprintf("connected to %s through the SOCKS proxy %s", t.HostPort(), d.Proxy)
			}
			return s, c, conn, &route{proxy: d.ProxyURL()}
		}
		c.Error = err.Error()
		s.Status = StatusFail
		var pse *ProxyStatusError
		switch {
		case errors.As(err, &pse) && pse.StatusCode == http.StatusProxyAuthRequired:
			c.ProxyStatus = pse.StatusCode
			s.Summary = fmt.Sprintf("the proxy %s wants authentication: CONNECT %s answered %s", d.Proxy, t.HostPort(), pse.Status)
			where := d.Variable
			if d.Source == "proxy-url" {
				where = "the kubeconfig's proxy-url"
			}
			s.fix("put the credentials in %s (http://user:password@proxy:port; Go sends Basic only), or bypass the proxy for this server", where)
		case errors.As(err, &pse):
			c.ProxyStatus = pse.StatusCode
			verb := "could not reach"
			if pse.StatusCode == http.StatusForbidden {
				verb = "refused to connect to"
			}
			s.Summary = fmt.Sprintf("the proxy %s %s %s: CONNECT answered %s", d.Proxy, verb, t.HostPort(), pse.Status)
		case isTimeout(err):
			s.Summary = fmt.Sprintf("no answer from the proxy %s within %s (CONNECT %s)", d.Proxy, timeout, t.HostPort())
		case strings.HasPrefix(d.ProxyURL().Scheme, "socks"):
			s.Summary = fmt.Sprintf("the SOCKS proxy %s could not connect to %s: %v", d.Proxy, t.HostPort(), err)
		default:
			s.Summary = fmt.Sprintf("CONNECT %s through the proxy %s failed: %v", t.HostPort(), d.Proxy, err)
		}
		s.evidence("the proxy, not this machine, resolves %s and connects to it", t.Host)
		var direct net.Conn
		var r *route
		tried := false
		if len(nr.addrs) > 0 {
			tried = true
			fb, conn, ap := dialFallback(ctx, nr.addrs, t.Port, timeout)
			fb.Hypothetical = true
			c.Fallback = fb
			if fb.OK {
				direct = conn
				r = &route{addr: ap, hypothetical: "the direct path kubectl takes once NO_PROXY matches"}
				if d.Source == "proxy-url" {
					r.hypothetical = "the direct path kubectl takes without proxy-url"
				}
				s.evidence("a direct connection to %s (%s, from %s) works: bypassing the proxy fixes this", ap, fb.IPClass, nr.source)
			} else {
				s.evidence("a direct connection to %s fails too: %s", fb.Address, fb.Error)
			}
		}
		if d.Source == "environment" && len(d.Suggest) > 0 && (pse == nil || pse.StatusCode != http.StatusProxyAuthRequired || direct != nil) {
			s.fix("%s", noProxyFix(sh, d, d.Suggest[0]))
		}
		if d.Source == "proxy-url" {
			s.fix("remove proxy-url from cluster %q in the kubeconfig (kubectl config unset clusters.%s.proxy-url), or ask the proxy's owners to allow %s", t.Cluster, t.Cluster, t.HostPort())
		}
		if tried && direct == nil {
			s.fix("this machine needs a network route to %s (VPN, ExpressRoute or VNet peering) and a firewall/NSG rule allowing TCP %s from it", nr.addrs[0], t.Port)
		}
		return s, c, direct, r
	}

	if len(nr.addrs) == 0 {
		s.Status = StatusSkip
		s.Summary = "no address to connect to: the name did not resolve (see name)"
		return s, nil, nil, nil
	}
	c, conn, ap := dialFallback(ctx, nr.addrs, t.Port, timeout)
	c.Hypothetical = nr.hypothetical
	if !c.OK {
		s.Status = StatusFail
		s.Summary = fmt.Sprintf("cannot connect to %s: %s", c.Address, c.Error)
		switch {
		case isConnRefused(c.err):
			s.fix("nothing accepts connections on %s: check the server port in the kubeconfig (AKS listens on 443), and that a firewall does not reject it", c.Address)
		case isTimeout(c.err):
			s.fix("packets to %s are dropped: this machine needs a route to it (VPN, ExpressRoute or VNet peering for a private IP) and firewall/NSG rules allowing TCP %s from this machine", c.Address, t.Port)
		default:
			s.fix("check the network path from this machine to %s", c.Address)
		}
		return s, c, nil, nil
	}
	s.Status = StatusOK
	s.Summary = fmt.Sprintf("connected to %s (%s) directly", ap, c.IPClass)
	r := &route{addr: ap}
	if nr.hypothetical {
		s.Summary += fmt.Sprintf(", using the address from %s (the system resolver has none)", nr.source)
		r.hypothetical = "an address the system resolver does not return"
	}
	return s, c, conn, r
}

// dialFallback dials addrs directly within timeout and describes it.
func dialFallback(ctx context.Context, addrs []netip.Addr, port string, timeout time.Duration) (*Connection, net.Conn, netip.AddrPort) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, ap, err := DialDirect(dctx, addrs, port)
	c := &Connection{Via: "direct", err: err}
	if err != nil {
		c.Address = netip.AddrPortFrom(addrs[0], mustPort(port)).String()
		c.IPClass = ClassifyIP(addrs[0])
		c.Error = err.Error()
		if isTimeout(err) {
			c.Error = fmt.Sprintf("no answer within %s (i/o timeout)", timeout)
		}
		return c, nil, ap
	}
	c.OK, c.Address, c.IPClass = true, ap.String(), ClassifyIP(ap.Addr())
	return c, conn, ap
}

// wsaECONNREFUSED is "connection refused" as Windows reports it
// (WSAECONNREFUSED); there it is not syscall.ECONNREFUSED.
const wsaECONNREFUSED = syscall.Errno(10061)

// isConnRefused reports whether err is a refused connection, on any OS.
func isConnRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, wsaECONNREFUSED)
}

func proxyAddr(u *url.URL) string {
	h, p := canonicalHostPort(u)
	return net.JoinHostPort(h, p)
}
