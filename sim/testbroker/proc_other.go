//go:build !linux

package testbroker

import (
	"errors"
	"syscall"
)

// procAttr has nothing to add outside Linux, which alone has a parent-death signal.
func procAttr() *syscall.SysProcAttr { return nil }

// usage is not available outside Linux.
func usage(int) (Usage, error) { return Usage{}, errors.New("process usage: only on Linux") }
