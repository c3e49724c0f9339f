//go:build !linux

package main

import "syscall"

// dieWithTest has nothing to add outside Linux, which alone has a parent-death signal.
func dieWithTest() *syscall.SysProcAttr { return nil }
