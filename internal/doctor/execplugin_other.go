//go:build !unix

package doctor

import (
	"os"
	"os/exec"
)

// startProcessGroup does nothing here: on Windows the plugin runs as a
// plain child process.
func startProcessGroup(*exec.Cmd) {}

// killProcessGroup kills the plugin itself; processes it started on
// Windows may outlive it.
func killProcessGroup(p *os.Process) error { return p.Kill() }
