package registry_test

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/registry"
	"github.com/tenantguard/tenantguard/internal/registry/registrytest"
)

// conformanceModule is the OCI distribution-spec conformance suite, pinned
// in hack/conformance/go.mod.
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance"

// TestConformance runs the OCI distribution-spec conformance suite side by
// side: against a Distribution registry directly, and against the gateway
// in front of another one, logged in as a tenant with every right on
// conformance/**. Every test that passes directly must pass through the
// gateway. It does so twice: with Distribution's in-memory storage and with
// its filesystem storage, whose results differ (see docs/registry.md). Set
// TENANTGUARD_CONFORMANCE_REPORT to a file to get the comparison as
// Markdown.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the conformance suite four times")
	}
	bin := conformanceBinary(t)
	var report strings.Builder
	for _, storage := range []string{"inmemory", "filesystem"} {
		t.Run(storage, func(t *testing.T) {
			fmt.Fprintf(&report, "## Storage: %s\n\n", storage)
			conformanceSideBySide(t, bin, storage, &report)
		})
	}
	if path := os.Getenv("TENANTGUARD_CONFORMANCE_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// conformanceSideBySide runs the suite directly and through the gateway,
// both upstreams with the given Distribution storage driver.
func conformanceSideBySide(t *testing.T, bin, storage string, out *strings.Builder) {
	upstreamOpts := func(o registrytest.Options) registrytest.Options {
		if storage == "filesystem" {
			o.RootDirectory = t.TempDir()
		}
		return o
	}
	direct := registrytest.Start(t, upstreamOpts(registrytest.Options{}))
	upstreamRun := runConformance(t, bin, direct.Host, "", "")

	up := registrytest.Start(t, upstreamOpts(registrytest.Options{Htpasswd: map[string]string{"gateway": "upstream-secret"}}))
	e := newEnv(t, envOptions{upstream: up, mutate: func(cfg *registry.Config) {
		cfg.UpstreamUsername = "gateway"
		cfg.UpstreamPasswordFile = writeFile(t, t.TempDir(), "upstream-password", "upstream-secret")
	}})
	gatewayRun := runConformance(t, bin, e.host, "conformance", "conformance-secret")

	var report strings.Builder
	fmt.Fprintf(&report, "Leaf tests (junit.xml):\n\n| | pass | fail | error | skip | total |\n|---|---|---|---|---|---|\n")
	runs := []struct {
		name string
		run  conformanceRun
	}{{"Distribution v3.1.2 directly (" + storage + ")", upstreamRun}, {"through the gateway", gatewayRun}}
	for _, r := range runs {
		c := r.run.counts()
		fmt.Fprintf(&report, "| %s | %d | %d | %d | %d | %d |\n", r.name, c["passed"], c["failure"], c["error"], c["skipped"], c["total"])
	}
	fmt.Fprintf(&report, "\nThe suite's own summary (every node of its result tree):\n\n| | Pass | FAIL | Error | Skip | Disabled | Total |\n|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		s := r.run.summary
		fmt.Fprintf(&report, "| %s | %d | %d | %d | %d | %d | %d |\n", r.name, s["Pass"], s["FAIL"], s["Error"], s["Skip"], s["Disabled"], s["Total"])
	}
	var lost, gained, other []string
	names := make([]string, 0, len(upstreamRun.cases))
	for n := range upstreamRun.cases {
		names = append(names, n)
	}
	for n := range gatewayRun.cases {
		if _, ok := upstreamRun.cases[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		u, g := upstreamRun.cases[n], gatewayRun.cases[n]
		us, gs := strings.Join(u, ","), strings.Join(g, ",")
		switch {
		case us == gs:
		case count(u, "passed") > count(g, "passed"):
			lost = append(lost, fmt.Sprintf("%s: %s directly, %s through the gateway", n, orMissing(us), orMissing(gs)))
		case count(g, "passed") > count(u, "passed"):
			gained = append(gained, fmt.Sprintf("%s: %s directly, %s through the gateway", n, orMissing(us), orMissing(gs)))
		default:
			other = append(other, fmt.Sprintf("%s: %s directly, %s through the gateway", n, orMissing(us), orMissing(gs)))
		}
	}
	fmt.Fprintf(&report, "\nPassed directly but not through the gateway: %d\n", len(lost))
	for _, l := range lost {
		fmt.Fprintf(&report, "- %s\n", l)
	}
	fmt.Fprintf(&report, "\nOther differences: %d\n", len(gained)+len(other))
	for _, l := range append(gained, other...) {
		fmt.Fprintf(&report, "- %s\n", l)
	}
	// Where the upstream's own failures are, by step of the suite.
	failing := map[string]int{}
	for n, ss := range upstreamRun.cases {
		if count(ss, "failure")+count(ss, "error") > 0 {
			parts := strings.Split(n, "/")
			failing[parts[1]] += count(ss, "failure") + count(ss, "error")
		}
	}
	steps := make([]string, 0, len(failing))
	for k := range failing {
		steps = append(steps, k)
	}
	sort.Strings(steps)
	fmt.Fprintf(&report, "\nFailing against Distribution directly (and so through the gateway), by data set of the suite:\n\n")
	for _, k := range steps {
		fmt.Fprintf(&report, "- %s: %d\n", k, failing[k])
	}
	pushes := 0
	for _, l := range e.audit.lines() {
		if l["identity"] == "robot:conformance" && l["event"] == "push" && l["decision"] == "allow" {
			pushes++
		}
	}
	fmt.Fprintf(&report, "\nManifest pushes the gateway audited for robot:conformance: %d\n", pushes)
	if pushes == 0 {
		t.Error("the gateway audited no push of the conformance run: did the suite go through it?")
	}
	t.Log("\n" + report.String())
	out.WriteString(report.String() + "\n")
	if n := upstreamRun.counts()["total"]; n < 100 {
		t.Fatalf("the suite ran only %d tests directly; something is broken", n)
	}
	if len(lost) > 0 {
		t.Errorf("%d tests pass against the upstream but not through the gateway", len(lost))
	}
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func orMissing(s string) string {
	if s == "" {
		return "absent"
	}
	return s
}

// conformanceRun is the result of one run of the suite.
type conformanceRun struct {
	// cases is test name -> the junit statuses (passed, failure, error,
	// skipped) of the tests of that name; a few names occur more than once,
	// in an order that changes between runs, so they compare as sorted
	// lists.
	cases map[string][]string
	// summary is the suite's own count (Pass, Skip, Disabled, FAIL, Error,
	// Total), which counts every node of its result tree, not only leaves.
	summary map[string]int
}

func (r conformanceRun) counts() map[string]int {
	c := map[string]int{}
	for _, ss := range r.cases {
		for _, s := range ss {
			c[s]++
		}
		c["total"] += len(ss)
	}
	return c
}

// runConformance runs the suite against a registry on plain HTTP.
func runConformance(t *testing.T, bin, host, user, password string) conformanceRun {
	t.Helper()
	dir := t.TempDir()
	results := filepath.Join(dir, "results")
	cmd := exec.Command(bin)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCI_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"OCI_REGISTRY="+host,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_USERNAME="+user,
		"OCI_PASSWORD="+password,
		"OCI_RESULTS_DIR="+results,
		"OCI_LOG=error",
	)
	out, err := cmd.CombinedOutput()
	// The suite exits 1 when any test fails, which the upstream's do.
	data, rerr := os.ReadFile(filepath.Join(results, "junit.xml"))
	if rerr != nil {
		t.Fatalf("conformance suite against %s: %v (%v)\n%s", host, rerr, err, tail(out, 4000))
	}
	var suites struct {
		Suites []struct {
			Cases []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
				Status    string `xml:"status,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &suites); err != nil {
		t.Fatalf("junit.xml: %v", err)
	}
	run := conformanceRun{cases: map[string][]string{}, summary: map[string]int{}}
	for _, s := range suites.Suites {
		for _, c := range s.Cases {
			key := c.Name
			if c.Classname != "" && !strings.HasPrefix(c.Name, c.Classname) {
				key = c.Classname + "/" + c.Name
			}
			run.cases[key] = append(run.cases[key], c.Status)
		}
	}
	for _, ss := range run.cases {
		sort.Strings(ss)
	}
	// The summary: "OCI Conformance Result: FAIL" then "  Pass......: 740".
	inSummary := false
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "OCI Conformance Result:") {
			inSummary = true
			continue
		}
		if !inSummary {
			continue
		}
		key, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			if strings.TrimSpace(line) == "" && len(run.summary) > 0 {
				break
			}
			continue
		}
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(val), &n); err == nil {
			run.summary[strings.TrimRight(key, ".")] = n
		}
	}
	t.Logf("conformance against %s: leaves %v; suite summary %v", host, run.counts(), run.summary)
	return run
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// conformanceBinary builds the suite once with `go test -c` from
// hack/conformance (its own module, from the Go module proxy) and caches it
// next to the control-plane binaries, keyed by the pinned version.
func conformanceBinary(t *testing.T) string {
	t.Helper()
	modDir, err := filepath.Abs(filepath.Join("..", "..", "hack", "conformance"))
	if err != nil {
		t.Fatal(err)
	}
	version := requiredVersion(t, filepath.Join(modDir, "go.mod"), conformanceModule)
	root, err := devenv.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "conformance", version+"_"+runtime.GOOS+"-"+runtime.GOARCH)
	bin := filepath.Join(dir, "conformance.test")
	if info, err := os.Stat(bin); err == nil && info.Mode().IsRegular() {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.CreateTemp(dir, ".conformance-*.test")
	if err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	t.Logf("building the conformance suite %s@%s (once; cached in %s)", conformanceModule, version, dir)
	cmd := exec.Command("go", "test", "-c", "-o", tmp.Name(), conformanceModule)
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the conformance suite: %v\n%s", err, out)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

func requiredVersion(t *testing.T, gomod, module string) string {
	t.Helper()
	f, err := os.Open(gomod)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == module {
			return fields[1]
		}
	}
	t.Fatalf("%s does not require %s", gomod, module)
	return ""
}
