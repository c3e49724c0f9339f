package alarm

import (
	"errors"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAdd is the cost of one Add into a heap that holds 1M sleepers, at random
// times an hour or two away (none fires while it runs). Every 64k Adds the heap is cut
// back to its first 1M entries (a prefix of a binary heap is one) outside the timing.
func BenchmarkAdd(b *testing.B) {
	const held = 1 << 20
	offsets := make([]time.Duration, 4096)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range offsets {
		offsets[i] = time.Hour + time.Duration(rng.Int64N(int64(time.Hour)))
	}
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			a, err := impl.start(held + 1<<16)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close(nil)
			c := make(chan error, 1) // never sent on before Close, which finds it full
			t0 := time.Now()
			for i := range held {
				if err := a.Add(t0.Add(offsets[i%len(offsets)]), chanWaker(c)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := a.Add(t0.Add(offsets[i%len(offsets)]), chanWaker(c)); err != nil {
					b.Fatal(err)
				}
				if i%(1<<16) == 1<<16-1 {
					b.StopTimer()
					a.mu.Lock()
					clear(a.heap[held:])
					a.heap = a.heap[:held]
					a.mu.Unlock()
					b.StartTimer()
				}
			}
		})
	}
}

// BenchmarkAddWake is the throughput of sleep-and-wake rounds (Add a time already due,
// receive the wake) from 64 goroutines per P beside 1M held sleepers, against the same
// round on a time.Timer of each goroutine's own.
func BenchmarkAddWake(b *testing.B) {
	const held = 1 << 20
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			a, err := impl.start(held + 1024)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close(nil)
			far := make(chan error, 1)
			t0 := time.Now().Add(time.Hour)
			for i := range held {
				if err := a.Add(t0.Add(time.Duration(i)), chanWaker(far)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetParallelism(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := make(chan error, 1)
				for pb.Next() {
					if err := a.Add(time.Now(), chanWaker(c)); err != nil {
						b.Error(err)
						return
					}
					if err := <-c; err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	b.Run("time.Timer", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(64)
		b.RunParallel(func(pb *testing.PB) {
			t := time.NewTimer(time.Hour)
			defer t.Stop()
			for pb.Next() {
				t.Reset(0)
				<-t.C
			}
		})
	})
}

// The lag benchmark's load: sleepers wake at random periods, repeating, while GC cycles
// run over a pointer-rich live heap and a garbage maker keeps starting new ones. The
// periods keep the wake rate (~55k/s) within what 2 cores serve, so lateness shows
// the scheduler and the GC, not a CPU overload (at 0.1–2 s, ~300k wakes/s, every
// variant fell seconds behind).
const (
	lagSleepers  = 200_000
	lagMinPeriod = 2 * time.Second
	lagMaxPeriod = 6 * time.Second
	lagWindow    = 4 * time.Second // wakes due in this window are measured
	lagSettle    = time.Second     // after the sleepers start, before the window
	lagLiveBytes = 300 << 20       // pointer-rich live heap: marks take ~1 s on 2 cores
	lagGarbage   = 64 << 20        // bytes of garbage a second
	lagGCEvery   = 2 * time.Second
	lagLate      = 10 * time.Millisecond
)

// BenchmarkWakeLagUnderGC is the evidence for the package: how late sleepers wake while
// the garbage collector marks. Each wake's lateness (now − when) goes into a histogram;
// the figures are its p50, p99, p99.9 and max in µs and the fraction of wakes later than
// 10 ms, for the Alarm on a timerfd, the Alarm on one time.Timer, and a time.Timer per
// sleeper (what a device does without the Alarm). Each sub-benchmark takes about
// lagSettle+lagWindow; run it with -benchtime 1x.
func BenchmarkWakeLagUnderGC(b *testing.B) {
	live := newLiveHeap(lagLiveBytes)
	defer runtime.KeepAlive(live)
	for _, impl := range impls {
		b.Run("alarm-"+impl.name, func(b *testing.B) {
			for range b.N {
				a, err := impl.start(lagSleepers)
				if err != nil {
					b.Fatal(err)
				}
				measureLag(b, func(t0 time.Time, period time.Duration, h *lagHist, stop <-chan struct{}) {
					c := make(chan error, 1)
					for next := t0; ; next = next.Add(period) {
						if a.Add(next, chanWaker(c)) != nil || <-c != nil {
							return
						}
						h.record(next)
					}
				}, func() { a.Close(errors.New("done")) })
			}
		})
	}
	b.Run("time.Timer", func(b *testing.B) {
		for range b.N {
			measureLag(b, func(t0 time.Time, period time.Duration, h *lagHist, stop <-chan struct{}) {
				t := time.NewTimer(time.Until(t0))
				defer t.Stop()
				for next := t0; ; next = next.Add(period) {
					t.Reset(time.Until(next))
					select {
					case <-t.C:
						h.record(next)
					case <-stop:
						return
					}
				}
			}, nil)
		}
	})
}

// measureLag runs lagSleepers goroutines of sleep (first wake t0, then every period, each
// recording its wakes in h until stop closes or end is called) beside the garbage maker
// for lagSettle+lagWindow, and reports what h saw in the window.
func measureLag(b *testing.B, sleep func(t0 time.Time, period time.Duration, h *lagHist, stop <-chan struct{}), end func()) {
	b.StopTimer()
	rng := rand.New(rand.NewPCG(9, 10))
	// The sleepers all start first, then are let go at once, so that spawning them does
	// not make the early ones late.
	var begin time.Time
	let := make(chan struct{})
	stop := make(chan struct{})
	h := &lagHist{}
	var wg sync.WaitGroup
	for range lagSleepers {
		period := lagMinPeriod + time.Duration(rng.Int64N(int64(lagMaxPeriod-lagMinPeriod)))
		phase := time.Duration(rng.Int64N(int64(period)))
		wg.Go(func() {
			<-let
			sleep(begin.Add(phase), period, h, stop)
		})
	}
	begin = time.Now()
	h.from, h.to = begin.Add(lagSettle), begin.Add(lagSettle+lagWindow)
	close(let)
	wg.Go(func() { makeGarbage(stop) })
	wg.Go(func() { driveGC(stop) })
	time.Sleep(time.Until(h.from))
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.StartTimer()
	time.Sleep(time.Until(h.to))
	b.StopTimer()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	close(stop)
	if end != nil {
		end()
	}
	wg.Wait()
	n := h.n.Load()
	if n == 0 {
		b.Fatal("no wakes in the window")
	}
	b.ReportMetric(float64(n), "wakes")
	b.ReportMetric(h.quantile(0.50), "p50-µs")
	b.ReportMetric(h.quantile(0.99), "p99-µs")
	b.ReportMetric(h.quantile(0.999), "p99.9-µs")
	b.ReportMetric(float64(h.max.Load())/1e3, "max-µs")
	b.ReportMetric(float64(h.late.Load())/float64(n), "late10ms-frac")
	b.ReportMetric(float64(after.NumGC-before.NumGC), "gc-cycles")
}

// driveGC starts a GC cycle every lagGCEvery until stop closes, so every variant sees the
// same marking; runtime.GC marks concurrently with the same workers as a triggered cycle.
func driveGC(stop <-chan struct{}) {
	tick := time.NewTicker(lagGCEvery)
	defer tick.Stop()
	for {
		runtime.GC()
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// makeGarbage allocates lagGarbage bytes a second in 256 KiB pieces until stop closes.
func makeGarbage(stop <-chan struct{}) {
	const piece = 256 << 10
	var sink []byte
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		for range lagGarbage / 1000 / piece {
			sink = make([]byte, piece)
			sink[0] = 1
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// liveNode is one object of the live heap: pointers to two random others, so marking
// chases pointers across the whole heap.
type liveNode struct {
	l, r *liveNode
	pad  [4]uint64
}

func newLiveHeap(bytes int) []*liveNode {
	nodes := make([]*liveNode, bytes/(48+8))
	for i := range nodes {
		nodes[i] = new(liveNode)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range nodes {
		n.l = nodes[rng.IntN(len(nodes))]
		n.r = nodes[rng.IntN(len(nodes))]
	}
	return nodes
}

// lagHist counts wake lateness in µs, log-linear with 8 sub-buckets per power of two
// (values within 12.5%), for wakes due within [from, to). Safe for concurrent use.
type lagHist struct {
	from, to time.Time
	buckets  [64 * 8]atomic.Int64
	n, late  atomic.Int64
	max      atomic.Int64 // ns
}

func (h *lagHist) record(when time.Time) {
	lag := time.Since(when)
	if when.Before(h.from) || !when.Before(h.to) {
		return
	}
	h.n.Add(1)
	if lag > lagLate {
		h.late.Add(1)
	}
	for m := h.max.Load(); int64(lag) > m && !h.max.CompareAndSwap(m, int64(lag)); m = h.max.Load() {
	}
	h.buckets[lagBucket(uint64(max(lag, 0)/time.Microsecond))].Add(1)
}

func lagBucket(us uint64) int {
	if us < 16 {
		return int(us)
	}
	shift := bits.Len64(us) - 4
	return shift*8 + int(us>>shift)
}

// quantile returns the upper bound in µs of the bucket holding quantile q.
func (h *lagHist) quantile(q float64) float64 {
	rank := int64(q * float64(h.n.Load()))
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen > rank {
			if i < 16 {
				return float64(i)
			}
			shift := i/8 - 1
			return float64((uint64(i-shift*8)+1)<<shift - 1)
		}
	}
	return float64(h.max.Load()) / 1e3
}
