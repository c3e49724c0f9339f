package mqttconn

import (
	"testing"
	"time"
)

func TestTimerPool(t *testing.T) {
	// A pooled timer fires after its own duration, never with a tick left from an earlier
	// use: the timers that bound publishes go round the pool once per message.
	for range 3 {
		tm := getTimer(10 * time.Millisecond)
		begin := time.Now()
		<-tm.C
		if took := time.Since(begin); took < 10*time.Millisecond {
			t.Errorf("fired after %v, want at least 10ms", took)
		}
		putTimer(tm)
		tm = getTimer(time.Hour)
		select {
		case <-tm.C:
			t.Error("a timer from the pool fired at once")
		case <-time.After(20 * time.Millisecond):
		}
		putTimer(tm)
	}
}

// BenchmarkTimerPool is what bounding one wait for a token costs: a pooled timer instead
// of a new one (about 250 bytes of garbage per message).
func BenchmarkTimerPool(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		putTimer(getTimer(10 * time.Second))
	}
}
