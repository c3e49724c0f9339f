package testbroker

import "syscall"

// procAttr makes the kernel kill mosquitto if the test binary dies without running its
// cleanups (a timeout panic, a kill), so no broker outlives its test.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
