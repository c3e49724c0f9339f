package main

import "syscall"

// dieWithTest makes the kernel kill a process the test starts if the test binary dies
// without running its cleanups (a timeout panic, a kill), so no Prometheus outlives it.
func dieWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
