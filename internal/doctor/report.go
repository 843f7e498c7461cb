package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Status is the verdict of one step.
type Status string

// The verdicts, from best to worst. SKIP means the step could not run
// because an earlier one failed; the step that failed says why.
const (
	StatusOK   Status = "OK"
	StatusSkip Status = "SKIP"
	StatusWarn Status = "WARN"
	StatusFail Status = "FAIL"
)

func (s Status) rank() int {
	switch s {
	case StatusOK:
		return 0
	case StatusSkip:
		return 1
	case StatusWarn:
		return 2
	default:
		return 3
	}
}

// Step names, in the order Run reports them.
const (
	StepKubeconfig = "kubeconfig"
	StepName       = "name"
	StepProxy      = "proxy"
	StepTCP        = "tcp"
	StepTLS        = "tls"
	StepAPI        = "api"
)

// Step is one check: a verdict, a one-line summary, the evidence it is based
// on, and the fixes to apply when it is not OK.
type Step struct {
	Name     string   `json:"name"`
	Status   Status   `json:"status"`
	Summary  string   `json:"summary"`
	Evidence []string `json:"evidence,omitempty"`
	Fixes    []string `json:"fixes,omitempty"`
}

func (s *Step) evidence(format string, args ...any) {
	s.Evidence = append(s.Evidence, fmt.Sprintf(format, args...))
}

func (s *Step) fix(format string, args ...any) {
	s.Fixes = append(s.Fixes, fmt.Sprintf(format, args...))
}

// Report is the result of Run. Its JSON form (WriteJSON) is stable: fields
// are only ever added.
type Report struct {
	// Context, Cluster and Server identify what was checked.
	Context string `json:"context"`
	Cluster string `json:"cluster"`
	Server  string `json:"server"`
	// Shell is the OS and shell the Fix lines are written for.
	Shell Shell `json:"shell"`
	// Result is the worst verdict of all steps.
	Result Status `json:"result"`
	Steps  []Step `json:"steps"`

	// The details each step is based on; nil when the step did not run.
	Target     *Target        `json:"target,omitempty"`
	Name       *NameInfo      `json:"nameInfo,omitempty"`
	Lookups    []Lookup       `json:"lookups,omitempty"`
	Proxy      *ProxyDecision `json:"proxyDecision,omitempty"`
	Connection *Connection    `json:"connection,omitempty"`
	TLS        *TLSResult     `json:"tlsResult,omitempty"`
	API        *APIResult     `json:"apiResult,omitempty"`
}

func (r *Report) add(s Step) {
	r.Steps = append(r.Steps, s)
	if r.Result == "" || s.Status.rank() > r.Result.rank() {
		r.Result = s.Status
	}
}

// Failed lists the names of the steps whose verdict is FAIL.
func (r *Report) Failed() []string {
	var names []string
	for _, s := range r.Steps {
		if s.Status == StatusFail {
			names = append(names, s.Name)
		}
	}
	return names
}

// Step returns the step with the given name, or nil.
func (r *Report) Step(name string) *Step {
	for i := range r.Steps {
		if r.Steps[i].Name == name {
			return &r.Steps[i]
		}
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a person: one block per step, the verdict
// first, then the evidence, then the Fix lines.
//
//	OK    kubeconfig  context "dev" (cluster "dev", user "dev")
//	      server https://127.0.0.1:6443
//	FAIL  name        ...
//	      Fix: ...
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "tenantguard doctor: context %q, server %s\n\n", r.Context, r.Server)
	for _, s := range r.Steps {
		b.WriteString(s.Text())
	}
	b.WriteString("\n")
	switch failed := r.Failed(); {
	case len(failed) > 0:
		fmt.Fprintf(&b, "Result: FAIL (%s)\n", strings.Join(failed, ", "))
	case r.Result == StatusWarn:
		b.WriteString("Result: OK with warnings\n")
	default:
		b.WriteString("Result: OK\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Text is the step as WriteText prints it.
func (s Step) Text() string {
	const indent = "      "
	var b strings.Builder
	fmt.Fprintf(&b, "%-4s  %-10s  %s\n", s.Status, s.Name, s.Summary)
	for _, e := range s.Evidence {
		writeIndented(&b, indent, "", e)
	}
	for _, f := range s.Fixes {
		writeIndented(&b, indent, "Fix: ", f)
	}
	return b.String()
}

// writeIndented writes text with the first line after prefix and the
// following lines aligned under it.
func writeIndented(b *strings.Builder, indent, prefix, text string) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	cont := indent + strings.Repeat(" ", len(prefix))
	for i, l := range lines {
		if i == 0 {
			b.WriteString(indent + prefix + l + "\n")
			continue
		}
		b.WriteString(cont + l + "\n")
	}
}
