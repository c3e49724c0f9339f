//go:build !race

// The race detector instruments every call, so stacks measured under it say nothing about
// a normal build; these tests run without -race (make test runs them separately).

package runner

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/metrics"
)

// TestIdleDeviceStackStaysSmall checks what a million-device fleet depends on: a device
// goroutine that has published, changed state and gone back to waiting keeps the 2 KiB
// stack every goroutine starts with (see workers).
func TestIdleDeviceStackStaysSmall(t *testing.T) {
	const n = 10000
	m := metrics.New(prometheus.NewRegistry(), "t")
	meas := newMeasurement()
	km := m.For("load")
	kmeas := meas.kind("load", km, m)
	pool := newWorkers()
	defer pool.close()
	// One device publishes at a time, so one worker serves them all and its own stack
	// does not blur the figure.
	var one sync.Mutex
	inFlight := new(atomic.Int64)
	step := func(stage string) func(p *port, ctx context.Context) {
		return func(p *port, ctx context.Context) {
			switch stage {
			case "state":
				p.SetState("sending")
			case "publish":
				_ = p.PublishAt(ctx, time.Now(), "t/1", sim.Reserve(64), 0, false)
			}
		}
	}
	for _, stage := range []string{"nothing", "state", "publish"} {
		t.Run(stage, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var ready, done sync.WaitGroup
			before := stackInuse()
			do := step(stage)
			for i := range n {
				p := &port{id: "d", conn: &nullConn{}, limit: rate.NewLimiter(10, 10), rng: rand.New(rand.NewPCG(1, uint64(i))),
					metrics: km, console: &console{}, meas: meas, km: kmeas,
					flight: context.Background(), inFlight: inFlight, workers: pool}
				p.req = pubReq{p: p, done: make(chan error, 1)}
				ready.Add(1)
				done.Add(1)
				go func() {
					defer done.Done()
					one.Lock()
					do(p, ctx)
					one.Unlock()
					ready.Done()
					timer := time.NewTimer(time.Hour)
					defer timer.Stop()
					select {
					case <-ctx.Done():
					case <-timer.C:
					}
				}()
			}
			ready.Wait()
			per := (stackInuse() - before) / n
			cancel()
			done.Wait()
			t.Logf("%s: %d bytes of stack per waiting device", stage, per)
			if per > 2600 {
				t.Errorf("%s: a waiting device holds %d bytes of stack, want the 2048 minimum", stage, per)
			}
		})
	}
}

func stackInuse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.StackInuse)
}
