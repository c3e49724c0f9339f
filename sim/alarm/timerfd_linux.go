package alarm

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// timerfd is the Linux waker: a non-blocking timerfd on CLOCK_MONOTONIC, read through the
// runtime's netpoller so that its firing readies the Alarm's goroutine the way network
// readiness does (see the package doc).
type timerfd struct {
	fd  int      // for timerfd_settime; valid until f is closed
	f   *os.File // owns fd; its Read parks in the netpoller
	buf [8]byte  // the expiration count a read returns
}

// newOSWaker creates the timerfd and returns the clock offset: CLOCK_MONOTONIC read just
// after base was, so off+when.Sub(base) is never earlier than when on that clock and the
// timer never fires before the Alarm's own clock says an entry is due.
func newOSWaker(time.Time) (waker, int64, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, 0, fmt.Errorf("alarm: timerfd_create: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		unix.Close(fd)
		return nil, 0, fmt.Errorf("alarm: clock_gettime: %w", err)
	}
	// A non-blocking fd makes os.NewFile register it with the netpoller. Never call f.Fd:
	// it switches the descriptor back to blocking mode.
	f := os.NewFile(uintptr(fd), "timerfd")
	return &timerfd{fd: fd, f: f}, ts.Nano(), nil
}

func (t *timerfd) set(when int64) {
	var spec unix.ItimerSpec // all zero disarms
	if when != never {
		// Zero would disarm; CLOCK_MONOTONIC is past 1 ns already, so 1 fires at once.
		spec.Value = unix.NsecToTimespec(max(when, 1))
	}
	// The only failures are a bad fd or spec, which the Alarm's lock and the clamp rule out.
	_ = unix.TimerfdSettime(t.fd, unix.TFD_TIMER_ABSTIME, &spec, nil)
}

func (t *timerfd) wait() error {
	_, err := t.f.Read(t.buf[:])
	return err
}

func (t *timerfd) close() {
	t.f.Close()
}
