package devenv

import "syscall"

// procAttr makes a guard process die with the process that started it, so
// that a test killed midway leaves no server behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
