package loadtest_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/loadtest"
)

// TestTinyRunCompletesAndClaimsEveryHost runs the load tool at a tiny size
// against two guard processes. It asserts no times: that every batch ran,
// every operation was admitted, the guard answered the guard side and was
// not called on the other, and every host the guard admitted is claimed by
// its namespace.
func TestTinyRunCompletesAndClaimsEveryHost(t *testing.T) {
	ctrl.SetLogger(logr.Discard())
	crds, err := devenv.AllCRDs()
	if err != nil {
		t.Fatal(err)
	}
	env := devenvtest.Start(t, devenv.Options{CRDs: crds})
	ctx := context.Background()
	guards, err := env.StartProcGuards(ctx, devenv.ProcGuardOptions{
		Dir: t.TempDir(), Replicas: 2, SkipRegistration: true, ExtraArgs: []string{"--adopt-interval=24h"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			guards.WriteLogs(os.Stderr)
		}
		if err := guards.Stop(); err != nil {
			t.Errorf("stop guards: %v", err)
		}
	})

	const tenants, objects, batches = 5, 40, 2
	levels := []int{0, 200}
	var progress bytes.Buffer
	rep, err := loadtest.Run(ctx, env, guards, loadtest.Options{
		Tenants: tenants, Objects: objects, Workers: 4, Batches: batches, Levels: levels,
		Deadline: 15 * time.Minute, Progress: &progress,
	})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}

	if want := len(levels) * len(loadtest.Workloads) * batches * 2; len(rep.Batches) != want {
		t.Errorf("%d batches, want %d", len(rep.Batches), want)
	}
	if want := len(levels) * len(loadtest.Workloads) * 2; len(rep.Rows) != want {
		t.Fatalf("%d rows, want %d", len(rep.Rows), want)
	}
	if want := len(levels) * len(loadtest.Workloads); len(rep.Ratios) != want {
		t.Errorf("%d ratios, want %d", len(rep.Ratios), want)
	}
	for _, row := range rep.Rows {
		if row.Ops != objects || row.Errors != 0 {
			t.Errorf("level %d %s %s: %d ops, %d errors; want %d ops, none failed", row.Level, row.Workload, row.Side, row.Ops, row.Errors, objects)
		}
		switch row.Side {
		case loadtest.Guard:
			if row.Admissions < float64(row.Ops) {
				t.Errorf("level %d %s guard: the guard answered %v admissions for %d operations", row.Level, row.Workload, row.Admissions, row.Ops)
			}
			// A new host is claimed with at least one create.
			if row.Workload == loadtest.IngressNewHost && row.APIRequests["POST"] < float64(row.Ops) {
				t.Errorf("level %d %s guard: the guard made %v POSTs for %d new hosts", row.Level, row.Workload, row.APIRequests["POST"], row.Ops)
			}
		case loadtest.None:
			if row.Admissions != 0 {
				t.Errorf("level %d %s none: the guard answered %v admissions with its webhook unregistered", row.Level, row.Workload, row.Admissions)
			}
		}
	}
	// The fill brings the cluster to the level exactly.
	filled := 0
	for _, f := range rep.Fills {
		filled += f.Ingresses
	}
	if filled == 0 {
		t.Errorf("no Ingresses filled before level %d", levels[1])
	}
	for _, b := range rep.Batches {
		if b.Level == levels[1] && b.Workload == loadtest.Workloads[0] && b.Index == 0 && b.Position == 0 && b.Ingresses != levels[1] {
			t.Errorf("first batch at level %d started with %d Ingresses", b.Level, b.Ingresses)
		}
	}
	// The hosts the guard admitted: one base host per tenant, the fill's,
	// and the guard side's new hosts; each is checked for its claim.
	if want := tenants + filled + len(levels)*objects; rep.Verified.Hosts != want || rep.Verified.Ingresses < want {
		t.Errorf("claims checked for %d Ingresses and %d hosts, want %d hosts", rep.Verified.Ingresses, rep.Verified.Hosts, want)
	}

	var table, js, rows, batchCSV bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, w := range loadtest.Workloads {
		if !strings.Contains(table.String(), w) {
			t.Errorf("table lacks workload %s:\n%s", w, table.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back loadtest.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Rows) != len(rep.Rows) {
		t.Errorf("JSON report does not read back with its %d rows: %v", len(rep.Rows), err)
	}
	if err := rep.WriteRowsCSV(&rows); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteBatchesCSV(&batchCSV); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		data *bytes.Buffer
		want int
	}{"rows": {&rows, len(rep.Rows)}, "batches": {&batchCSV, len(rep.Batches)}} {
		recs, err := csv.NewReader(c.data).ReadAll()
		if err != nil || len(recs) != c.want+1 {
			t.Errorf("%s CSV: %d records (%v), want a header and %d", name, len(recs), err, c.want)
		}
	}
	t.Log("\n" + table.String())
}

func TestOptionsRefuseUnboundedRuns(t *testing.T) {
	for _, o := range []loadtest.Options{
		{Tenants: -1},
		{Tenants: loadtest.MaxTenants + 1},
		{Objects: loadtest.MaxObjects + 1},
		{Workers: loadtest.MaxWorkers + 1},
		{Objects: 3, Batches: 4},
		{Levels: []int{100, 50}},
		{Levels: []int{-1}},
		{Workloads: []string{"everything"}},
		{Deadline: -time.Second},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
	if err := (loadtest.Options{}).Validate(); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}
