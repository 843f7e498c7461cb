package doctor

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echoServer accepts connections on loopback and echoes one line back.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, ln, func(c net.Conn) {
		go func() {
			defer c.Close()
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil {
				_, _ = c.Write([]byte(line))
			}
		}()
	})
}

// closedPort returns a loopback address nothing listens on: connecting to
// it is refused.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return ap
}

func TestDialProxy(t *testing.T) {
	echo := echoServer(t)
	const private = testAKSName + ":443"
	tests := []struct {
		name       string
		status     int
		target     string
		user       *url.Userinfo
		wantStatus int
	}{
		{name: "proxy cannot reach the private endpoint", status: http.StatusBadGateway, target: private, wantStatus: 502},
		{name: "proxy policy refuses", status: http.StatusForbidden, target: private, wantStatus: 403},
		{name: "proxy wants credentials", status: http.StatusProxyAuthRequired, target: private, wantStatus: 407},
		{name: "tunnel established", status: http.StatusBadGateway, target: "reachable.example:443"},
		{name: "credentials are sent as Basic", status: http.StatusBadGateway, target: "reachable.example:443", user: url.UserPassword("alice", "pr0xy-pa55")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startConnectProxy(t, tt.status, map[string]string{"reachable.example:443": echo})
			pu := *p.URL
			pu.User = tt.user
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := DialProxy(ctx, &pu, tt.target)
			if tt.wantStatus != 0 {
				var pse *ProxyStatusError
				if !errors.As(err, &pse) || pse.StatusCode != tt.wantStatus {
					t.Fatalf("err = %v, want status %d", err, tt.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write([]byte("hello\n")); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil || line != "hello\n" {
				t.Fatalf("echo through the tunnel = %q, %v", line, err)
			}
			if got := p.Targets(); len(got) != 1 || got[0] != tt.target {
				t.Errorf("proxy was asked for %v, want %s", got, tt.target)
			}
			wantAuth := ""
			if tt.user != nil {
				wantAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pr0xy-pa55"))
			}
			if got := p.Auth(); got[0] != wantAuth {
				t.Errorf("Proxy-Authorization = %q, want %q", got[0], wantAuth)
			}
		})
	}
}

func TestDialProxySOCKS5(t *testing.T) {
	addr := startSOCKS5(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := DialProxy(ctx, &url.URL{Scheme: "socks5", Host: addr}, testAKSName+":443")
	if err == nil || !strings.Contains(err.Error(), "host unreachable") {
		t.Fatalf("err = %v, want the SOCKS server's host unreachable", err)
	}
	_, err = DialProxy(ctx, &url.URL{Scheme: "socks4", Host: addr}, testAKSName+":443")
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("socks4: err = %v", err)
	}
}

func TestDialDirect(t *testing.T) {
	closed := closedPort(t)
	echo := netip.MustParseAddrPort(echoServer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, _, err := DialDirect(ctx, []netip.Addr{closed.Addr()}, itoa(closed.Port()))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v, want connection refused", err)
	}
	// The first address refuses on this port, the second one answers:
	// like Go, keep trying the next address.
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", itoa(echo.Port())))
	if err != nil {
		t.Fatalf("listen 127.0.0.2: %v", err)
	}
	ln.Close()
	conn, got, err := DialDirect(ctx, []netip.Addr{netip.MustParseAddr("127.0.0.2"), echo.Addr()}, itoa(echo.Port()))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if got != echo {
		t.Errorf("connected to %s, want %s", got, echo)
	}
}

// TestIsConnRefused: a refused connection is recognised as Linux and macOS
// report it and as Windows does (WSAECONNREFUSED, 10061), so the tcp step
// gives the "nothing listens" Fix on every OS.
func TestIsConnRefused(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.Errno(10061)} {
		err := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
		if !isConnRefused(err) {
			t.Errorf("errno %d is not recognised as refused", errno)
		}
	}
	if isConnRefused(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ETIMEDOUT)}) {
		t.Error("a timeout is not a refusal")
	}
}
