//go:build !linux

package testbroker

import "syscall"

// procAttr has nothing to add outside Linux, which alone has a parent-death signal.
func procAttr() *syscall.SysProcAttr { return nil }
