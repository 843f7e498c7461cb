package doctor

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseDNSServer(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"10.0.0.4", "10.0.0.4:53", false},
		{" 10.0.0.4:5353 ", "10.0.0.4:5353", false},
		{"168.63.129.16", "168.63.129.16:53", false},
		{"fd00::4", "[fd00::4]:53", false},
		{"[fd00::4]:53", "[fd00::4]:53", false},
		{"::ffff:10.0.0.4", "10.0.0.4:53", false},
		{"", "", true},
		{"dns.corp.example", "", true},
		{"dns.corp.example:53", "", true},
		{"10.0.0.4:0", "", true},
		{"10.0.0.4:65536", "", true},
		{"10.0.0.4:dns", "", true},
		{"10.0.0.4:", "", true},
		{"[fd00::4]", "", true},
		{"fe80::1%eth0", "", true},
		{"10.0.0.256", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDNSServer(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("ParseDNSServer(%q) error = %v, want error %v", tt.in, err, tt.err)
			}
			if err == nil && got.String() != tt.want {
				t.Errorf("ParseDNSServer(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestClassifyIP(t *testing.T) {
	tests := map[string]IPClass{
		"127.0.0.1":       IPLoopback,
		"::1":             IPLoopback,
		"10.224.0.4":      IPPrivate,
		"172.16.0.1":      IPPrivate,
		"192.168.1.1":     IPPrivate,
		"fd00::1":         IPPrivate,
		"100.64.1.1":      IPShared,
		"169.254.0.1":     IPLinkLocal,
		"fe80::1":         IPLinkLocal,
		"0.0.0.0":         IPUnspecified,
		"20.50.60.70":     IPPublic,
		"::ffff:10.0.0.1": IPPrivate,
	}
	for ip, want := range tests {
		if got := ClassifyIP(netip.MustParseAddr(ip)); got != want {
			t.Errorf("ClassifyIP(%s) = %s, want %s", ip, got, want)
		}
	}
}

const (
	testAKSName   = "tg-abc123.0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.privatelink.westeurope.azmk8s.io"
	testAKSPublic = "tg-abc123.hcp.westeurope.azmk8s.io"
)

// TestResolve asks real DNS servers on loopback: an Azure-like one that
// answers the private zone, an on-prem-like one that answers NXDOMAIN, one
// that never answers, side by side with a Go resolver as the system one.
func TestResolve(t *testing.T) {
	azure := startDNS(t, "127.0.0.1", map[string][]string{
		testAKSName:     {"10.224.0.4"},
		"dual.example":  {"10.0.0.5", "fd00::5"},
		"empty.example": {},
		testAKSPublic:   {"10.224.0.4"},
	})
	onprem := startDNS(t, "127.0.0.1", nil)
	silent := silentDNS(t)
	servers := []netip.AddrPort{
		netip.MustParseAddrPort(azure.Addr),
		netip.MustParseAddrPort(onprem.Addr),
		netip.MustParseAddrPort(silent),
	}
	in := ResolveInput{System: goResolver(onprem.Addr), Servers: servers, Timeout: 300 * time.Millisecond}

	got := Resolve(context.Background(), testAKSName, in)
	want := []Outcome{OutcomeNotFound, OutcomeAnswer, OutcomeNXDOMAIN, OutcomeTimeout}
	for i, l := range got {
		if l.Outcome != want[i] {
			t.Errorf("%s: outcome %q (%s), want %q", l.Label(), l.Outcome, l.Describe(), want[i])
		}
	}
	if a := got[1].Addresses; len(a) != 1 || a[0].IP != "10.224.0.4" || a[0].Class != IPPrivate {
		t.Errorf("azure answer = %+v", a)
	}

	in.Servers = servers[:1]
	in.System = goResolver(azure.Addr)
	dual := Resolve(context.Background(), "dual.example", in)
	for _, l := range dual {
		if l.Outcome != OutcomeAnswer || len(l.Addresses) != 2 {
			t.Errorf("%s: %s, want both addresses", l.Label(), l.Describe())
		}
	}
	empty := Resolve(context.Background(), "empty.example", in)
	if empty[1].Outcome != OutcomeNoRecords || empty[0].Outcome != OutcomeNotFound {
		t.Errorf("empty.example: %s / %s", empty[0].Describe(), empty[1].Describe())
	}
}

// TestNameStep covers the verdicts and the Fix lines of the name step.
func TestNameStep(t *testing.T) {
	azure := startDNS(t, "127.0.0.2", map[string][]string{testAKSName: {"10.224.0.4"}, testAKSPublic: {"10.224.0.4"}, "api.corp.example": {"10.9.9.9"}})
	onprem := startDNS(t, "127.0.0.1", map[string][]string{"api.corp.example": {"10.1.1.1"}})
	azureAP := netip.MustParseAddrPort(azure.Addr)
	run := func(host string, system *dnsServer, servers []netip.AddrPort, viaProxy bool) nameResult {
		lookups := Resolve(context.Background(), host, ResolveInput{System: goResolver(system.Addr), Servers: servers, Timeout: time.Second})
		return nameStep(ClassifyName(host), lookups, viaProxy)
	}

	t.Run("private FQDN only on Azure DNS", func(t *testing.T) {
		r := run(testAKSName, onprem, []netip.AddrPort{azureAP}, false)
		if r.step.Status != StatusFail || !r.hypothetical || r.addrs[0].String() != "10.224.0.4" {
			t.Fatalf("step %+v, addrs %v", r.step, r.addrs)
		}
		fixes := strings.Join(r.step.Fixes, "\n")
		for _, want := range []string{
			`zone "privatelink.westeurope.azmk8s.io" { type forward; forward only; forwarders { 127.0.0.2 port ` + itoa(azureAP.Port()) + `; }; };`,
			`Add-DnsServerConditionalForwarderZone -Name "privatelink.westeurope.azmk8s.io" -MasterServers 127.0.0.2`,
			"az aks update -g <resource-group> -n <cluster> --enable-public-fqdn",
			"az aks get-credentials -g <resource-group> -n <cluster> --public-fqdn",
			"10.224.0.4 " + testAKSName,
		} {
			if !strings.Contains(fixes, want) {
				t.Errorf("fixes do not contain %q:\n%s", want, fixes)
			}
		}
	})
	t.Run("through a proxy a local failure is a warning", func(t *testing.T) {
		r := run(testAKSName, onprem, nil, true)
		if r.step.Status != StatusWarn || len(r.addrs) != 0 {
			t.Fatalf("step %+v", r.step)
		}
		if !strings.Contains(strings.Join(r.step.Fixes, "\n"), "<resolver-in-vnet>") {
			t.Errorf("without an answering server the forwarder is a placeholder: %q", r.step.Fixes)
		}
	})
	t.Run("public FQDN unknown everywhere", func(t *testing.T) {
		r := run("gone.hcp.westeurope.azmk8s.io", onprem, []netip.AddrPort{azureAP}, false)
		if r.step.Status != StatusFail || !strings.Contains(r.step.Fixes[0], "--enable-public-fqdn") {
			t.Fatalf("step %+v", r.step)
		}
	})
	t.Run("resolves on the system resolver", func(t *testing.T) {
		r := run(testAKSPublic, azure, nil, false)
		if r.step.Status != StatusOK || r.hypothetical || !strings.Contains(strings.Join(r.step.Evidence, "\n"), "network route") {
			t.Fatalf("step %+v", r.step)
		}
	})
	t.Run("resolvers disagree", func(t *testing.T) {
		r := run("api.corp.example", onprem, []netip.AddrPort{azureAP}, false)
		if r.step.Status != StatusWarn || r.addrs[0].String() != "10.1.1.1" {
			t.Fatalf("step %+v", r.step)
		}
	})
	t.Run("IP literal", func(t *testing.T) {
		r := nameStep(ClassifyName("10.224.0.4"), nil, false)
		if r.step.Status != StatusOK || r.addrs[0].String() != "10.224.0.4" {
			t.Fatalf("step %+v", r.step)
		}
	})
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }
