//go:build !linux

package alarm

import "time"

func newOSWaker(base time.Time) (waker, int64, error) {
	return newTimerWaker(base)
}
