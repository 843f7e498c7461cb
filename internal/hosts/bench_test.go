package hosts_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/tenantguard/tenantguard/internal/hosts"
)

// BenchmarkIndexMemory measures the heap the ownership index holds for
// 100,000 claimed hosts, each used by one Ingress (reported as MB/100k).
func BenchmarkIndexMemory(b *testing.B) {
	const n = 100_000
	names := make([]hosts.Name, n)
	for i := range names {
		names[i] = hosts.MustParse(fmt.Sprintf("app%d.team%d.example.com", i, i%500), single)
	}
	var ix *hosts.Index
	for b.Loop() {
		before := heap()
		ix = hosts.NewIndex()
		for i, name := range names {
			ns := fmt.Sprintf("ns%d", i%2000)
			ix.SetOwner(hosts.Owner{Name: name, Namespace: ns, Tenant: fmt.Sprintf("t%d", i%1000)})
			ix.SetUses(hosts.ObjectKey{Namespace: ns, Kind: "Ingress", Name: fmt.Sprint("i", i)},
				[]hosts.Use{{Name: name, Namespace: ns, Paths: []string{"/"}}})
		}
		b.ReportMetric(float64(heap()-before)/1e6, "MB/100k-hosts")
	}
	runtime.KeepAlive(ix)
	runtime.KeepAlive(names)
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkOverlapping looks up the owners of a name among 100,000 claims.
func BenchmarkOverlapping(b *testing.B) {
	ix := hosts.NewIndex()
	for i := 0; i < 100_000; i++ {
		ix.SetOwner(hosts.Owner{Name: hosts.MustParse(fmt.Sprintf("app%d.team%d.example.com", i, i%500), single), Namespace: "ns"})
	}
	name := hosts.MustParse("new.team7.example.com", single)
	for b.Loop() {
		ix.Overlapping(name, 8, nil)
	}
}
