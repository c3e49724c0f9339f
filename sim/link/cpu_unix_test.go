//go:build unix

package link

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU time (both ends of the loopback pair).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
