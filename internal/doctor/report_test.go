package doctor

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

func testReport() *Report {
	r := &Report{Context: "aks", Cluster: "aks", Server: "https://" + testAKSName}
	r.add(Step{Name: StepKubeconfig, Status: StatusOK, Summary: "context \"aks\""})
	r.add(Step{Name: StepName, Status: StatusFail, Summary: "does not resolve", Evidence: []string{"system resolver: no such host"},
		Fixes: []string{"forward the zone:\nBIND: zone ...\nWindows: Add-..."}})
	r.add(Step{Name: StepProxy, Status: StatusWarn, Summary: "through the proxy"})
	r.add(Step{Name: StepTCP, Status: StatusSkip, Summary: "no address"})
	return r
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := testReport().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `tenantguard doctor: context "aks", server https://` + testAKSName + `

OK    kubeconfig  context "aks"
FAIL  name        does not resolve
      system resolver: no such host
      Fix: forward the zone:
           BIND: zone ...
           Windows: Add-...
WARN  proxy       through the proxy
SKIP  tcp         no address

Result: FAIL (name)
`
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestResultAndFailed(t *testing.T) {
	r := testReport()
	if r.Result != StatusFail || !slices.Equal(r.Failed(), []string{StepName}) || r.Step(StepTCP).Status != StatusSkip || r.Step("nope") != nil {
		t.Errorf("result %s, failed %v", r.Result, r.Failed())
	}
	warn := &Report{}
	warn.add(Step{Name: StepTLS, Status: StatusWarn})
	warn.add(Step{Name: StepAPI, Status: StatusOK})
	if warn.Result != StatusWarn || len(warn.Failed()) != 0 {
		t.Errorf("result %s", warn.Result)
	}
}

// TestWriteJSON pins the top-level and step field names: scripts read them.
func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := testReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"context", "cluster", "server", "result", "steps"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b.String())
		}
	}
	step := m["steps"].([]any)[1].(map[string]any)
	for _, k := range []string{"name", "status", "summary", "evidence", "fixes"} {
		if _, ok := step[k]; !ok {
			t.Errorf("step JSON lacks %q", k)
		}
	}
	if m["result"] != "FAIL" || step["status"] != "FAIL" {
		t.Errorf("statuses %v %v", m["result"], step["status"])
	}
}
