// Package alarm wakes many sleeping goroutines from one timer.
//
// fleetsim runs one goroutine per simulated device, and a device spends nearly all of its
// life waiting for its next send. Waiting on a time.Timer of its own costs each device a
// runtime timer and a channel (~260 B) plus a sudog per select case; an Alarm instead
// keeps one 24-byte heap entry per sleeper and wakes it through a Waker the device
// already is.
//
// The second reason is punctuality under garbage collection. During a mark phase, which
// lasts seconds with a million goroutine stacks to scan, the runtime runs idle mark
// workers on otherwise idle Ps. Such a worker yields to runnable goroutines and to
// network-poller readiness (runtime.pollWork in runtime/proc.go) but not to expired
// runtime timers, which wait until sysmon preempts the worker after ~10 ms
// (golang/go#16528). At 1M devices one GC cycle made ~11,000 once-a-minute sends leave
// more than 10 ms late. On Linux an Alarm's one timer is a timerfd read through the
// netpoller, whose readiness pollWork sees at once. Elsewhere it falls back to one
// time.Timer, which still saves the memory but wakes no more punctually than a timer per
// sleeper (in BenchmarkWakeLagUnderGC it did a little worse).
//
// BenchmarkWakeLagUnderGC measures it. On 2 cores, with 200k sleepers and GC marking
// about half the time, the timerfd cut the share of wakes more than 10 ms late about
// 3.5-fold (~9% against ~30%) and the median lateness from 1–4 ms to ~80 µs; part of
// the latter gain holds without GC too, since an idle runtime sleeps for timers in
// epoll_wait, whose timeout is whole milliseconds. It does not remove the tail: p99
// stayed ~25 ms (against 40–100 ms), presumably behind mark work that does not poll
// (the fractional worker runs until preempted), so keeping mark phases short (GOGC,
// GOMEMLIMIT, fewer pointers) still matters.
//
// The third reason is cost at moderate rates: an Alarm can wake together the sleepers due
// close together. A process that wakes for every send goes idle between them, and each
// wake-up then costs more than the send: the timer, a thread woken with a futex, an
// epoll_wait, and the same again for each acknowledgement it waits for. Against mosquitto
// at 3,000 msg/s (QoS 1, 64 publishers on connections of their own) that was ~150 µs of
// CPU a message, against ~32 µs at 30,000 msg/s. With a quantum, the Alarm cuts its clock
// into slots of that length and wakes every sleeper due within a slot at the slot's start,
// in one go: woken up to one quantum early, never late on that account. Their sends then
// go out together, the broker's answers come back together, and the process wakes once
// for all of them.
//
// The contract: Add(when, w) makes the Alarm call w.Wake exactly once, with nil at (or
// just after) the start of when's slot (when itself with no quantum), or with Close's
// error if the Alarm is closed first. Add runs on the sleeper's goroutine and keeps to a
// small frame so that goroutine's stack stays at Go's 2 KiB minimum.
package alarm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// never is the "not armed" time: no entry is ever due at it.
const never = math.MaxInt64

// batch is how many due entries the Alarm's goroutine pops per hold of the lock; it sends
// on them after letting go, so woken sleepers that Add again do not queue behind a long
// round of sends.
const batch = 64

// waker is the one OS timer behind an Alarm, on the Alarm's monotonic clock (nanoseconds).
// set and close are called with the Alarm's lock held, wait only from its goroutine.
type waker interface {
	// set arms the timer to fire at when (at once if when is past); never disarms it.
	set(when int64)
	// wait blocks until the timer fires (it may also return early, spuriously) and
	// returns an error once close has been called.
	wait() error
	// close stops the timer and ends a wait in progress.
	close()
}

// entry is one sleeper: 24 bytes in the heap.
type entry struct {
	when int64 // on the Alarm's monotonic clock
	w    Waker
}

// Alarm wakes goroutines at the times they ask for. Its methods are safe for concurrent use.
type Alarm struct {
	// base and off convert a time.Time to the clock the waker runs on: off + when.Sub(base),
	// so Go's monotonic reading is used where the time has one.
	base    time.Time
	off     int64
	quantum int64 // the slot length, nanoseconds; 0: every sleeper wakes at its own time
	w       waker
	done    chan struct{} // closed when the goroutine ends

	mu    sync.Mutex
	heap  []entry // binary min-heap on when
	armed int64   // when the waker is armed for; never if it is not
	err   error   // non-nil once closed: what Close sent

	due [batch]entry // the goroutine's popped entries, used only by it
}

// New starts an Alarm and its one goroutine (ended by Close). sizeHint preallocates the
// heap for that many sleepers. A quantum above 0 wakes together the sleepers due within
// each slot of that length, at the slot's start (see the package doc); 0 wakes each at
// its own time.
func New(sizeHint int, quantum time.Duration) (*Alarm, error) {
	return start(sizeHint, quantum, newOSWaker)
}

// start builds an Alarm on the waker newWaker returns, with the clock offset it gives.
func start(sizeHint int, quantum time.Duration, newWaker func(base time.Time) (waker, int64, error)) (*Alarm, error) {
	base := time.Now()
	w, off, err := newWaker(base)
	if err != nil {
		return nil, err
	}
	a := &Alarm{
		base:    base,
		off:     off,
		quantum: max(int64(quantum), 0),
		w:       w,
		done:    make(chan struct{}),
		heap:    make([]entry, 0, max(sizeHint, 0)),
		armed:   never,
	}
	go a.run()
	return a, nil
}

var errNoWaker = errors.New("alarm: nil waker")

// Waker is what an Alarm wakes: once per Add, with nil at its time or with Close's error.
// Wake must not block, since the Alarm's one goroutine calls it for every sleeper.
type Waker interface {
	Wake(err error)
}

// Add asks for w to be woken with nil at (or just after) the start of when's slot: when
// itself with no quantum. After Close, Add returns Close's error at once and w is not
// woken.
func (a *Alarm) Add(when time.Time, w Waker) error {
	if w == nil {
		return errNoWaker
	}
	t := a.clock(when)
	a.mu.Lock()
	if a.err != nil {
		err := a.err
		a.mu.Unlock()
		return err
	}
	a.push(entry{when: t, w: w})
	if at := a.slot(t); at < a.armed {
		a.armed = at
		a.w.set(at)
	}
	a.mu.Unlock()
	return nil
}

// Close wakes every sleeper still waiting by sending err (context.Canceled if err is nil),
// stops the timer and waits for the Alarm's goroutine to end. It is idempotent and safe
// concurrently with Add.
func (a *Alarm) Close(err error) {
	if err == nil {
		err = context.Canceled
	}
	a.stop(err)
	<-a.done
}

// stop marks the Alarm closed with err, wakes every sleeper with it and closes the waker.
// Only the first call does anything.
func (a *Alarm) stop(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return
	}
	a.err = err
	for _, e := range a.heap {
		e.w.Wake(err)
	}
	a.heap = nil
	a.armed = never
	a.w.close()
}

// run is the Alarm's goroutine: it waits for the timer and wakes whoever is due, until
// the waker is closed.
func (a *Alarm) run() {
	defer close(a.done)
	for {
		if err := a.w.wait(); err != nil {
			// Closed by stop, or the OS timer failed: then nobody would be woken again,
			// so fail every sleeper with the error instead of leaving it asleep.
			a.stop(fmt.Errorf("alarm: timer: %w", err))
			return
		}
		a.fire()
	}
}

// fire wakes every entry due by now, a batch at a time, then arms the timer for the
// earliest entry left (or disarms it).
func (a *Alarm) fire() {
	for {
		now := a.clock(time.Now())
		a.mu.Lock()
		if a.err != nil {
			a.mu.Unlock()
			return
		}
		n := 0
		for n < batch && len(a.heap) > 0 && a.slot(a.heap[0].when) <= now {
			a.due[n] = a.pop()
			n++
		}
		more := len(a.heap) > 0 && a.slot(a.heap[0].when) <= now
		if !more {
			// The timer has fired, so whatever it was armed for is spent.
			next := int64(never)
			if len(a.heap) > 0 {
				next = a.slot(a.heap[0].when)
			}
			if next != never || a.armed != never {
				a.w.set(next)
			}
			a.armed = next
		}
		a.mu.Unlock()
		for i := range n {
			a.due[i].w.Wake(nil)
			a.due[i] = entry{}
		}
		if !more {
			return
		}
	}
}

// Woken reports whether a sleeper due at t would be woken at once: its slot has begun. A
// sleeper can then skip Add, as it would be woken straight away. Not inlined: a sleeper's
// frame stays as small as it was without it (see the contract above).
//
//go:noinline
func (a *Alarm) Woken(t time.Time) bool {
	return a.quantum > 0 && a.slot(a.clock(t)) <= a.clock(time.Now())
}

// slot is when, on the waker's clock, the Alarm wakes a sleeper due at t: the start of
// t's slot, or t itself with no quantum.
func (a *Alarm) slot(t int64) int64 {
	if a.quantum == 0 || t <= 0 {
		return t
	}
	return t - t%a.quantum
}

// clock converts t to the waker's clock, saturating far from now.
func (a *Alarm) clock(t time.Time) int64 {
	d := int64(t.Sub(a.base))
	if d >= never-1-a.off {
		return never - 1
	}
	return a.off + d
}

// push adds e to the heap.
func (a *Alarm) push(e entry) {
	h := append(a.heap, e)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].when <= e.when {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = e
	a.heap = h
}

// pop removes and returns the earliest entry; the heap must not be empty.
func (a *Alarm) pop() entry {
	h := a.heap
	top := h[0]
	n := len(h) - 1
	last := h[n]
	h[n] = entry{}
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		if r := l + 1; r < n && h[r].when < h[l].when {
			l = r
		}
		if last.when <= h[l].when {
			break
		}
		h[i] = h[l]
		i = l
	}
	if n > 0 {
		h[i] = last
	}
	a.heap = h
	return top
}
