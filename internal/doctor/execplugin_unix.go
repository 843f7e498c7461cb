//go:build unix

package doctor

import (
	"os"
	"os/exec"
	"syscall"
)

// startProcessGroup makes the plugin the leader of a new process group, so
// that killProcessGroup reaches every process it starts (a browser helper,
// a sleeping retry loop).
func startProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup kills the plugin's whole process group.
func killProcessGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return p.Kill()
	}
	return nil
}
