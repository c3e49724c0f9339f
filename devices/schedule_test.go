package devices

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestScheduleCountsDroppedTicks: a device busy for 55 ms on a 10 ms period takes one stale
// tick and the ticker drops four; every one of them called for a send.
func TestScheduleCountsDroppedTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s schedule
		start := time.Now()
		ticks, stop := s.every(10*time.Millisecond, true, 1) // and one send at once
		defer stop()
		if got := s.DueBefore(start.Add(25 * time.Millisecond)); got != 3 {
			t.Errorf("due by 25 ms: %d, want 3 (at once, 10 ms, 20 ms)", got)
		}
		time.Sleep(55 * time.Millisecond) // busy: a publish crawling up a slow link
		s.took(<-ticks, true)             // the 10 ms tick, taken late
		if got := s.DueBefore(time.Now()); got != 6 {
			t.Errorf("due by 55 ms: %d, want 6 (at once, then 10 to 50 ms)", got)
		}
		s.took(<-ticks, true) // the 60 ms tick: the four before it were dropped
		if got := s.DueBefore(time.Now().Add(time.Nanosecond)); got != 7 {
			t.Errorf("due by 60 ms: %d, want 7", got)
		}
		// Disarmed (a camera): its ticks call for nothing, and the count stands.
		time.Sleep(5 * time.Millisecond)
		s.took(<-ticks, false)
		time.Sleep(100 * time.Millisecond)
		if got := s.DueBefore(time.Now()); got != 7 {
			t.Errorf("due while not sending: %d, want 7", got)
		}
	})
}

func TestScheduleWithoutPeriod(t *testing.T) {
	var s schedule
	ticks, stop := s.every(0, true, 1)
	defer stop()
	if ticks != nil || s.DueBefore(time.Now().Add(time.Hour)) != 0 {
		t.Errorf("no period: want no ticks and nothing due")
	}
}
