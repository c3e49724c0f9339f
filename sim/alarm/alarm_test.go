package alarm

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// impls are the wakers every behaviour test runs against: the OS one (a timerfd on Linux)
// and the portable time.Timer one.
var impls = []struct {
	name  string
	start func(sizeHint int) (*Alarm, error)
}{
	{"os", func(n int) (*Alarm, error) { return New(n, 0) }},
	{"timer", func(n int) (*Alarm, error) { return start(n, 0, newTimerWaker) }},
}

// forEach runs f as a subtest per waker, each checked for leaked goroutines.
func forEach(t *testing.T, f func(t *testing.T, a *Alarm)) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			a, err := impl.start(16)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close(nil)
			f(t, a)
		})
	}
}

// patience bounds every wait for a wake that should come; only a broken Alarm reaches it.
const patience = 10 * time.Second

func receive(t *testing.T, c <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(patience):
		t.Fatalf("%s: not woken within %v", what, patience)
		return nil
	}
}

func TestSleepersWakeNeverEarly(t *testing.T) {
	forEach(t, func(t *testing.T, a *Alarm) {
		const n = 2000
		rng := rand.New(rand.NewPCG(1, 2))
		start := time.Now()
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			when := start.Add(time.Duration(rng.Int64N(200)) * time.Millisecond) // ties too
			if i%50 == 0 {
				when = start.Add(-time.Second) // already past: due at once
			}
			wg.Go(func() {
				c := make(chan error, 1)
				if err := a.Add(when, chanWaker(c)); err != nil {
					errs <- err
					return
				}
				select {
				case err := <-c:
					if err != nil {
						errs <- err
					} else if now := time.Now(); now.Before(when) {
						errs <- errors.New("woken " + when.Sub(now).String() + " early")
					}
				case <-time.After(patience):
					errs <- errors.New("not woken")
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		a.mu.Lock()
		left := len(a.heap)
		a.mu.Unlock()
		if left != 0 {
			t.Errorf("%d entries left in the heap after every sleeper woke", left)
		}
	})
}

func TestEarlierAddRearms(t *testing.T) {
	forEach(t, func(t *testing.T, a *Alarm) {
		late, soon := make(chan error, 1), make(chan error, 1)
		if err := a.Add(time.Now().Add(time.Hour), chanWaker(late)); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(20 * time.Millisecond)
		if err := a.Add(when, chanWaker(soon)); err != nil {
			t.Fatal(err)
		}
		if err := receive(t, soon, "the 20 ms sleeper"); err != nil {
			t.Fatalf("the 20 ms sleeper got %v, want nil", err)
		}
		if time.Now().Before(when) {
			t.Error("the 20 ms sleeper woke early")
		}
		select {
		case err := <-late:
			t.Fatalf("the 1 h sleeper woke (%v)", err)
		default:
		}
		a.Close(nil)
		if err := receive(t, late, "the 1 h sleeper at Close"); !errors.Is(err, context.Canceled) {
			t.Errorf("the 1 h sleeper got %v at Close, want context.Canceled", err)
		}
	})
}

func TestRepeatedSleeps(t *testing.T) {
	// A device's life: sleep, wake, sleep again on the same channel.
	forEach(t, func(t *testing.T, a *Alarm) {
		c := make(chan error, 1)
		next := time.Now()
		for i := range 20 {
			next = next.Add(time.Millisecond)
			if err := a.Add(next, chanWaker(c)); err != nil {
				t.Fatal(err)
			}
			if err := receive(t, c, "round"); err != nil {
				t.Fatalf("round %d: got %v", i, err)
			}
			if time.Now().Before(next) {
				t.Fatalf("round %d: woke early", i)
			}
		}
	})
}

func TestCloseWakesSleepersWithItsError(t *testing.T) {
	forEach(t, func(t *testing.T, a *Alarm) {
		stop := errors.New("run over")
		cs := make([]chan error, 10)
		for i := range cs {
			cs[i] = make(chan error, 1)
			if err := a.Add(time.Now().Add(time.Hour+time.Duration(i)), chanWaker(cs[i])); err != nil {
				t.Fatal(err)
			}
		}
		a.Close(stop)
		for i, c := range cs {
			if err := receive(t, c, "sleeper at Close"); err != stop {
				t.Errorf("sleeper %d got %v, want %v", i, err, stop)
			}
		}
		a.Close(errors.New("second")) // idempotent: the first error stays
		c := make(chan error, 1)
		if err := a.Add(time.Now(), chanWaker(c)); err != stop {
			t.Errorf("Add after Close returned %v, want %v", err, stop)
		}
		time.Sleep(10 * time.Millisecond)
		if len(c) != 0 {
			t.Errorf("a channel added after Close received %v", <-c)
		}
	})
}

func TestCloseNilIsCanceled(t *testing.T) {
	forEach(t, func(t *testing.T, a *Alarm) {
		a.Close(nil)
		if err := a.Add(time.Now(), chanWaker(make(chan error, 1))); !errors.Is(err, context.Canceled) {
			t.Errorf("Add after Close(nil) returned %v, want context.Canceled", err)
		}
	})
}

func TestAddRefusesNilWaker(t *testing.T) {
	forEach(t, func(t *testing.T, a *Alarm) {
		if err := a.Add(time.Now(), nil); err == nil {
			t.Error("Add accepted a nil Waker")
		}
	})
}

// chanWaker wakes a sleeper blocked on a channel with a free buffer slot.
type chanWaker chan error

func (c chanWaker) Wake(err error) {
	select {
	case c <- err:
	default:
	}
}

func TestExtremeTimes(t *testing.T) {
	forEach(t, func(t *testing.T, a *Alarm) {
		far, zero := make(chan error, 1), make(chan error, 1)
		if err := a.Add(time.Now().Add(200*365*24*time.Hour), chanWaker(far)); err != nil {
			t.Fatal(err)
		}
		if err := a.Add(time.Time{}, chanWaker(zero)); err != nil {
			t.Fatal(err)
		}
		if err := receive(t, zero, "the zero-time sleeper"); err != nil {
			t.Errorf("the zero-time sleeper got %v", err)
		}
		a.Close(nil)
		if err := receive(t, far, "the far sleeper at Close"); !errors.Is(err, context.Canceled) {
			t.Errorf("the far sleeper got %v, want context.Canceled", err)
		}
	})
}

// TestConcurrentAddClose checks, under -race, that each Add either is refused and its
// channel gets nothing, or is accepted and its channel gets exactly one value by the time
// Close returns.
func TestConcurrentAddClose(t *testing.T) {
	forEach(t, func(t *testing.T, a *Alarm) {
		const adders, each = 8, 200
		type try struct {
			c  chan error
			ok bool
		}
		tries := make([][]try, adders)
		var added atomic.Int64
		var wg sync.WaitGroup
		for g := range adders {
			wg.Go(func() {
				for i := range each {
					added.Add(1)
					c := make(chan error, 1)
					when := time.Now().Add(time.Duration(i%3) * time.Millisecond)
					if i%2 == 1 {
						when = when.Add(time.Hour)
					}
					tries[g] = append(tries[g], try{c, a.Add(when, chanWaker(c)) == nil})
				}
			})
		}
		for added.Load() < adders*each/2 {
			runtime.Gosched()
		}
		a.Close(nil) // about half way through the adds
		wg.Wait()
		for _, ts := range tries {
			for _, tr := range ts {
				if want := map[bool]int{true: 1, false: 0}[tr.ok]; len(tr.c) != want {
					t.Fatalf("accepted=%v: channel holds %d values, want %d", tr.ok, len(tr.c), want)
				}
			}
		}
	})
}

// TestTimerWakerExactUnderSynctest runs the portable waker on fake time, where a sleeper
// must wake at exactly its time.
func TestTimerWakerExactUnderSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, err := start(0, 0, newTimerWaker)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close(nil)
		rng := rand.New(rand.NewPCG(3, 4))
		t0 := time.Now()
		var wg sync.WaitGroup
		for range 100 {
			when := t0.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
			wg.Go(func() {
				c := make(chan error, 1)
				if err := a.Add(when, chanWaker(c)); err != nil {
					t.Error(err)
					return
				}
				if err := <-c; err != nil {
					t.Error(err)
				}
				if now := time.Now(); !now.Equal(when) {
					t.Errorf("woke at %v, want %v", now.Sub(t0), when.Sub(t0))
				}
			})
		}
		wg.Wait()
	})
}

// TestQuantumWakesASlotTogether runs a batching Alarm on fake time: every sleeper wakes
// at exactly the start of its slot, so the sleepers due within one slot wake together, up
// to one quantum early and never late; Woken says so once the slot has begun.
func TestQuantumWakesASlotTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const q = 10 * time.Millisecond
		a, err := start(0, q, newTimerWaker)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close(nil)
		t0 := time.Now() // the Alarm's clock starts here: slots are [t0+k·q, t0+(k+1)·q)
		rng := rand.New(rand.NewPCG(7, 8))
		var wg sync.WaitGroup
		for range 200 {
			when := t0.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
			slot := t0.Add(when.Sub(t0).Truncate(q))
			wg.Go(func() {
				c := make(chan error, 1)
				if err := a.Add(when, chanWaker(c)); err != nil {
					t.Error(err)
					return
				}
				if err := <-c; err != nil {
					t.Error(err)
				}
				if now := time.Now(); !now.Equal(slot) {
					t.Errorf("due at %v: woke at %v, want its slot's start %v", when.Sub(t0), now.Sub(t0), slot.Sub(t0))
				}
				if !a.Woken(when) {
					t.Errorf("due at %v: Woken is false at %v, in its slot", when.Sub(t0), time.Now().Sub(t0))
				}
				if a.Woken(slot.Add(q)) {
					t.Errorf("Woken is true for the next slot %v at %v", slot.Add(q).Sub(t0), time.Now().Sub(t0))
				}
			})
		}
		wg.Wait()
	})
}

// TestQuantumNeverMoreThanOneEarly runs a batching Alarm on each real waker: no sleeper
// wakes more than one quantum before its time.
func TestQuantumNeverMoreThanOneEarly(t *testing.T) {
	const q = 20 * time.Millisecond
	for name, a := range map[string]func() (*Alarm, error){
		"os":    func() (*Alarm, error) { return New(0, q) },
		"timer": func() (*Alarm, error) { return start(0, q, newTimerWaker) },
	} {
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			a, err := a()
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close(nil)
			start := time.Now()
			var wg sync.WaitGroup
			for i := range 200 {
				when := start.Add(time.Duration(i) * time.Millisecond)
				wg.Go(func() {
					c := make(chan error, 1)
					if err := a.Add(when, chanWaker(c)); err != nil {
						t.Error(err)
						return
					}
					select {
					case err := <-c:
						if err != nil {
							t.Error(err)
						}
					case <-time.After(patience):
						t.Error("not woken")
						return
					}
					if early := when.Sub(time.Now()); early > q {
						t.Errorf("woken %v early, more than the quantum %v", early, q)
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestNoQuantumNeverWoken: without a quantum nothing is woken before its time, so Woken is
// always false and a sleeper always goes through Add.
func TestNoQuantumNeverWoken(t *testing.T) {
	forEach(t, func(t *testing.T, a *Alarm) {
		if a.Woken(time.Now().Add(-time.Hour)) {
			t.Error("Woken is true without a quantum")
		}
	})
}

func TestHeapOrder(t *testing.T) {
	a := &Alarm{}
	rng := rand.New(rand.NewPCG(5, 6))
	var want, got []int64
	for range 5000 {
		if rng.IntN(3) > 0 || len(a.heap) == 0 {
			w := rng.Int64N(1000)
			want = append(want, w)
			a.push(entry{when: w})
			continue
		}
		e := a.pop()
		got = append(got, e.when)
		// The popped entry is the smallest still pending.
		for _, x := range a.heap {
			if x.when < e.when {
				t.Fatalf("popped %d while %d was pending", e.when, x.when)
			}
		}
	}
	for len(a.heap) > 0 {
		got = append(got, a.pop().when)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Fatal("popped entries differ from pushed ones")
	}
}
