package mqttconn

import (
	"sync"
	"time"
)

// timerPool recycles the timers that bound the waits for paho's tokens, one per publish:
// a new timer each time cost about 250 bytes of garbage per message (BenchmarkWait). Since
// Go 1.23 a stopped timer's channel holds no stale tick, so a timer from the pool is as
// good as a new one.
var timerPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// getTimer returns a timer that fires after d; give it back with putTimer.
func getTimer(d time.Duration) *time.Timer {
	t := timerPool.Get().(*time.Timer)
	t.Reset(d)
	return t
}

// putTimer stops t and returns it to the pool.
func putTimer(t *time.Timer) {
	t.Stop()
	timerPool.Put(t)
}
