package testbroker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procAttr makes the kernel kill mosquitto if the test binary dies without running its
// cleanups (a timeout panic, a kill), so no broker outlives its test.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// usage reads a process's CPU time and resident memory from /proc/{pid}/stat (proc(5)):
// utime and stime are fields 14 and 15, in clock ticks; rss is field 24, in pages.
func usage(pid int) (Usage, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Usage{}, fmt.Errorf("process usage: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Usage{}, errors.New("process usage: unexpected /proc stat format")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 22 {
		return Usage{}, errors.New("process usage: unexpected /proc stat format")
	}
	num := func(field int) int64 {
		v, _ := strconv.ParseInt(f[field-3], 10, 64)
		return v
	}
	return Usage{
		CPU: time.Duration(num(14)+num(15)) * time.Second / clockTicks,
		RSS: num(24) * int64(os.Getpagesize()),
	}, nil
}

// clockTicks is USER_HZ, the unit of CPU times in /proc; Linux fixes it at 100 on every
// architecture Go supports.
const clockTicks = 100
