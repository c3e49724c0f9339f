package devices

import (
	"sync/atomic"
	"time"
)

// schedule is a device's period as the engine counts it (sim.Scheduled): the sends its
// ticks called for, whether they were made or not. Go's ticker drops the ticks a busy
// receiver could not take (a camera whose snapshot is still crawling up its link when the
// next is due); without this count those sends would vanish from the report. A device
// embeds one, starts it in Run (every), and tells it each tick it takes (took).
//
// DueBefore may be called from the engine's goroutines while the device runs, hence the
// atomics.
type schedule struct {
	period  time.Duration
	last    atomic.Int64  // Unix nanoseconds of the last tick taken, or of the start; 0 before it
	due     atomic.Uint64 // sends called for up to last
	sending atomic.Bool   // whether the ticks after last call for a send
}

// every starts the schedule: a send every period from now, sending says whether the
// ticks call for sends for now, and initial counts sends due at once (a sensor's first
// reading). It returns the ticker's channel, nil (never ready) when period is 0, and the
// function that stops it.
func (s *schedule) every(period time.Duration, sending bool, initial uint64) (<-chan time.Time, func()) {
	if period <= 0 {
		return nil, func() {}
	}
	s.period = period
	s.due.Store(initial)
	s.sending.Store(sending)
	t := time.NewTicker(period)
	s.last.Store(time.Now().UnixNano())
	return t.C, t.Stop
}

// took counts the tick of time tick that the device took, and those the ticker dropped
// since the last one it took: each called for a send if sending (the device's state now
// stands for the dropped ones too).
func (s *schedule) took(tick time.Time, sending bool) {
	last := s.last.Load()
	n := max((tick.UnixNano()-last+int64(s.period)/2)/int64(s.period), 1) // ticks since last, this one included
	if sending {
		s.due.Add(uint64(n))
	}
	s.sending.Store(sending)
	s.last.Store(tick.UnixNano())
}

// DueBefore implements sim.Scheduled: the sends called for by the ticks taken, and, if the
// ticks call for sends, by the ticks since then that fell before t.
func (s *schedule) DueBefore(t time.Time) uint64 {
	last := s.last.Load()
	due := s.due.Load()
	if last == 0 || !s.sending.Load() || t.UnixNano() <= last {
		return due
	}
	return due + uint64((t.UnixNano()-last-1)/int64(s.period))
}
