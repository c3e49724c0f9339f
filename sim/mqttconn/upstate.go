package mqttconn

import "sync/atomic"

// UpState is whether a connection is up, for those who read it and those who wait for it.
// Both clients (this package's and sim/lean's) keep one. Set and Wait are called with the
// owner's lock held; Up may be called at any time.
type UpState struct {
	up atomic.Bool
	ch chan struct{} // closed while up; replaced when it goes down
}

// Up reports whether the connection is up now.
func (s *UpState) Up() bool { return s.up.Load() }

// Wait returns a channel that is closed while the connection is up.
func (s *UpState) Wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Set records that the connection went up or down, wakes those who wait for it, and
// reports whether that was a change.
func (s *UpState) Set(up bool) bool {
	if s.up.Swap(up) == up {
		return false
	}
	if up {
		s.Wait()
		close(s.ch)
	} else {
		s.ch = make(chan struct{})
	}
	return true
}
