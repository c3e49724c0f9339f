//go:build !race

// The race detector instruments every call, so stacks measured under it say nothing about
// a normal build; this test runs without -race (make test runs it separately).

package alarm

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestSleeperStackStaysSmall checks what a million sleepers depend on: a goroutine that
// calls Add and waits on its channel keeps the 2 KiB stack every goroutine starts with,
// whether Add takes the lock uncontended, waits for it, or re-arms the timer.
func TestSleeperStackStaysSmall(t *testing.T) {
	const n = 10000
	stages := []struct {
		name string
		// sleep is a sleeper's life up to its last wait: i is its index.
		sleep func(a *Alarm, i int, c chan error) error
		// one runs the sleepers one at a time, so every Add is earlier than all before it
		// and re-arms the timer; otherwise they contend for the lock.
		one bool
	}{
		{name: "contended", sleep: func(a *Alarm, i int, c chan error) error {
			return a.Add(time.Now().Add(time.Hour+time.Duration(i)), chanWaker(c))
		}},
		{name: "rearm", one: true, sleep: func(a *Alarm, i int, c chan error) error {
			return a.Add(time.Now().Add(time.Hour-time.Duration(i)*time.Millisecond), chanWaker(c))
		}},
		{name: "woken", sleep: func(a *Alarm, i int, c chan error) error {
			// Woken once (the Alarm's goroutine readies it), then asleep again.
			if err := a.Add(time.Now().Add(time.Duration(i%20)*time.Millisecond), chanWaker(c)); err != nil {
				return err
			}
			if err := <-c; err != nil {
				return err
			}
			return a.Add(time.Now().Add(time.Hour), chanWaker(c))
		}},
	}
	for _, impl := range impls {
		for _, st := range stages {
			t.Run(impl.name+"/"+st.name, func(t *testing.T) {
				defer goleak.VerifyNone(t)
				a, err := impl.start(n)
				if err != nil {
					t.Fatal(err)
				}
				var one sync.Mutex
				var ready, done sync.WaitGroup
				errs := make(chan error, n)
				before := stackInuse()
				for i := range n {
					ready.Add(1)
					done.Add(1)
					go func() {
						defer done.Done()
						c := make(chan error, 1)
						if st.one {
							one.Lock()
						}
						err := st.sleep(a, i, c)
						if st.one {
							one.Unlock()
						}
						ready.Done()
						if err == nil {
							err = <-c
						}
						errs <- err
					}()
				}
				ready.Wait()
				per := (stackInuse() - before) / n
				a.Close(nil)
				done.Wait()
				close(errs)
				for err := range errs {
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("a sleeper ended with %v, want Close's error", err)
					}
				}
				t.Logf("%d bytes of stack per sleeper", per)
				// A grown stack is 4096 bytes; the slack is for the test's own goroutines.
				if per > 2048+128 {
					t.Errorf("a sleeper holds %d bytes of stack, want the 2048 minimum", per)
				}
			})
		}
	}
}

func stackInuse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.StackInuse)
}
