//go:build !linux

package devenv

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
