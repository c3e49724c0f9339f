package alarm

import (
	"errors"
	"time"
)

// timerWaker is the portable waker: one time.Timer. It saves the per-sleeper memory but
// not the punctuality under GC that a timerfd gives (see the package doc).
type timerWaker struct {
	base time.Time // the Alarm's clock is nanoseconds since base
	t    *time.Timer
	quit chan struct{}
}

var errClosed = errors.New("alarm: closed")

// newTimerWaker returns a disarmed timerWaker on a clock that counts from base.
func newTimerWaker(base time.Time) (waker, int64, error) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &timerWaker{base: base, t: t, quit: make(chan struct{})}, 0, nil
}

func (w *timerWaker) set(when int64) {
	if when == never {
		w.t.Stop()
		return
	}
	// Compared before subtracting: when may be far in the past (a zero time.Time).
	if now := int64(time.Since(w.base)); when > now {
		w.t.Reset(time.Duration(when - now))
	} else {
		w.t.Reset(0)
	}
}

func (w *timerWaker) wait() error {
	select {
	case <-w.t.C:
		return nil
	case <-w.quit:
		return errClosed
	}
}

func (w *timerWaker) close() {
	w.t.Stop()
	close(w.quit)
}
