// Command loadtest measures what tenantguard adds to the requests tenants
// make, on a real local control plane with the guard running as a cluster
// runs it: two `tenantguard serve` processes under the service account and
// RBAC that `tenantguard install` renders. See docs/loadtest.md.
//
//	go run ./hack/loadtest                                   # quick: 100 tenants, 1,000 objects
//	go run ./hack/loadtest -tenants 1000 -objects 10000 -levels 0,50000 -deadline 2h  # large
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/loadtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		opts      loadtest.Options
		levels    string
		workloads string
		out       string
		replicas  int
		pprof     bool
		guardEnv  []string
	)
	flag.IntVar(&opts.Tenants, "tenants", 100, "tenants, one namespace each")
	flag.IntVar(&opts.Objects, "objects", 1000, "operations of each workload on each side at each level")
	flag.IntVar(&opts.Workers, "workers", 16, "concurrent tenant clients")
	flag.IntVar(&opts.Batches, "batches", 5, "interleaved batches per workload and side")
	flag.StringVar(&levels, "levels", "0,5000", "cluster sizes in Ingresses at which to measure, increasing; the cluster is filled up to each first")
	flag.StringVar(&workloads, "workloads", strings.Join(loadtest.Workloads, ","), "workloads to run")
	flag.DurationVar(&opts.Deadline, "deadline", 30*time.Minute, "bound on the whole run")
	flag.StringVar(&out, "out", ".tenantguard/loadtest", "directory for report.json, rows.csv, batches.csv and the guard logs")
	flag.IntVar(&replicas, "replicas", 2, "guard serve processes")
	flag.Func("guard-env", "KEY=VALUE added to the guard processes' environment, e.g. GOMEMLIMIT=90MiB (repeat the flag for more)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("%q: want KEY=VALUE", v)
		}
		guardEnv = append(guardEnv, v)
		return nil
	})
	flag.BoolVar(&pprof, "pprof", false, "serve net/http/pprof from each guard process on a loopback port (printed at the start)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags only; see -h)", flag.Args())
	}
	var err error
	if opts.Levels, err = parseLevels(levels); err != nil {
		return err
	}
	opts.Workloads = strings.Split(workloads, ",")
	opts.Progress = os.Stderr
	if err := opts.Validate(); err != nil {
		return err
	}
	if replicas < 1 || replicas > 8 {
		return fmt.Errorf("replicas %d: want 1 to 8", replicas)
	}
	ctrl.SetLogger(logr.Discard())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	bins, err := devenv.EnsureBinaries(ctx, devenv.BuildOptions{Progress: os.Stderr})
	if err != nil {
		return err
	}
	crds, err := devenv.AllCRDs()
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "starting etcd and kube-apiserver on 127.0.0.1")
	env, err := devenv.Start(ctx, devenv.Options{Binaries: bins, CRDs: crds})
	if err != nil {
		return err
	}
	defer env.Stop()
	// An admin kubeconfig, to look at the cluster or profile the API server
	// (kubectl get --raw /debug/pprof/profile) while the run goes on.
	adminConfig := filepath.Join(out, "admin.kubeconfig")
	if err := devenv.WriteKubeconfig(adminConfig, env.Config, "loadtest"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "admin kubeconfig: %s\n", adminConfig)

	guardDir := filepath.Join(out, "guard")
	if err := os.RemoveAll(guardDir); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "starting %d guard processes (logs in %s)\n", replicas, guardDir)
	guards, err := env.StartProcGuards(ctx, devenv.ProcGuardOptions{
		Dir: guardDir, Replicas: replicas, SkipRegistration: true, Pprof: pprof, Env: guardEnv,
		// Objects made while the webhook is unregistered have no claims;
		// the adopter would claim them in the background and disturb the
		// measurement, so it waits beyond any run.
		ExtraArgs: []string{"--adopt-interval=24h"},
	})
	if err != nil {
		return err
	}
	defer guards.Stop()
	for i := range replicas {
		if addr := guards.PprofAddr(i); addr != "" {
			fmt.Fprintf(os.Stderr, "replica %d: pprof at http://%s/debug/pprof/\n", i, addr)
		}
	}

	rep, runErr := loadtest.Run(ctx, env, guards, opts)
	if rep == nil {
		return runErr
	}
	rep.Command = "go run ./hack/loadtest " + strings.Join(os.Args[1:], " ")
	rep.Commit = commit()
	fmt.Printf("\ncommit %s, %d CPUs, %.0f GiB, %d tenants, %d guard replicas, %d workers, %s\n\n",
		rep.Commit, rep.Machine.CPUs, rep.Machine.MemoryGiB, rep.Tenants, replicas, rep.Workers, time.Duration(rep.Seconds*float64(time.Second)).Round(time.Second))
	if err := rep.WriteTable(os.Stdout); err != nil {
		return err
	}
	fmt.Printf("\nclaims checked: %d Ingresses admitted by the guard, %d hosts, each claimed by its namespace (%d pending)\n",
		rep.Verified.Ingresses, rep.Verified.Hosts, rep.Verified.Pending)
	failed := 0
	for _, row := range rep.Rows {
		failed += row.Errors
	}
	if failed > 0 {
		runErr = errors.Join(runErr, fmt.Errorf("%d operations failed, so the figures are not comparable; see firstError in report.json", failed))
	}
	werr := writeFiles(out, rep)
	if werr == nil {
		fmt.Printf("report: %s, %s, %s\n", filepath.Join(out, "report.json"), filepath.Join(out, "rows.csv"), filepath.Join(out, "batches.csv"))
	}
	return errors.Join(runErr, werr)
}

func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("levels %q: %q is not a number", s, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func writeFiles(dir string, rep *loadtest.Report) error {
	for name, write := range map[string]func(*os.File) error{
		"report.json": func(f *os.File) error { return rep.WriteJSON(f) },
		"rows.csv":    func(f *os.File) error { return rep.WriteRowsCSV(f) },
		"batches.csv": func(f *os.File) error { return rep.WriteBatchesCSV(f) },
	} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// commit names the checkout measured, best effort.
func commit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
