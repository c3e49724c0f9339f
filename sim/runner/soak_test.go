package runner

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// TestSoakDoesNotGrow is the short version of the soak run (README, "Soak"): a thousand
// devices streaming for several seconds must not grow in goroutines or heap once warmed
// up, and must leave nothing running.
func TestSoakDoesNotGrow(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	defer goleak.VerifyNone(t)
	b := embedded(t)
	defer b.Close()
	s := streamScenario(1, 10, 1_000_000, false) // never runs out
	s.Homes = 500                                // 500 streamers and 500 listeners, 5,000 msg/s out
	s.Duration = 8 * time.Second
	s.Connections = scenario.Connections{Mode: scenario.Pool, PoolSize: 20}
	// Each listener hears its own home's streamer only, so deliveries grow with devices,
	// not with their square.
	s.Groups[0].Params = &listenParams{Filter: "{prefix}/stream/#"}
	s.Groups[1].Topic = "{prefix}/stream/{id}"
	type sample struct {
		goroutines int
		heap       uint64
	}
	var samples []sample
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				samples = append(samples, sample{runtime.NumGoroutine(), ms.HeapAlloc})
			}
		}
	}()
	sum, err := Run(context.Background(), Config{Scenario: s, Kinds: measureKinds, Metrics: metrics.New(prometheus.NewRegistry(), "soak"),
		Conn: mqttconn.Options{Broker: b.URL(), ConnectTimeout: 5 * time.Second}, Grace: time.Second,
		AllowGeneratorLimit: true}) // growth is the question; a generator slowed by -race and forced collections may lag
	cancel()
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	// Warm-up is the first 3 s; after it the counts may wobble, not climb.
	warm := samples[6 : len(samples)-2] // and not the stop
	first, last := warm[0], warm[len(warm)-1]
	t.Logf("after warm-up: goroutines %d → %d, heap %.1f → %.1f MB over %d samples", first.goroutines, last.goroutines,
		float64(first.heap)/1e6, float64(last.heap)/1e6, len(warm))
	// A leak raises the floor the counts come back to; workers started for a burst on a
	// busy machine, and messages queued behind it, raise single samples and pass. Compare
	// the lowest sample of each half.
	floor := func(xs []sample, of func(sample) uint64) uint64 {
		m := of(xs[0])
		for _, x := range xs {
			m = min(m, of(x))
		}
		return m
	}
	half := len(warm) / 2
	goroutines := func(x sample) uint64 { return uint64(x.goroutines) }
	heap := func(x sample) uint64 { return x.heap }
	gEarly, gLate := floor(warm[:half], goroutines), floor(warm[half:], goroutines)
	early, late := floor(warm[:half], heap), floor(warm[half:], heap)
	// Publish workers come and go; behind its schedules, the generator may keep its whole
	// pool busy. A goroutine a message (5,000 a second) would still be far above that.
	slack := max(gEarly/10, 100)
	g := sum.Measured.Generator
	if g.Bottleneck {
		slack += maxWorkers
	}
	if gLate > gEarly+slack {
		t.Errorf("the goroutines' floor grew from %d to %d after warm-up", gEarly, gLate)
	}
	if g.Bottleneck {
		// Messages the generator could not keep up with queue up, and a busy machine's
		// backlog looks like a leak here: the heap says nothing then.
		t.Logf("heap floor %.1f → %.1f MB not judged: the generator was behind (%s)", float64(early)/1e6, float64(late)/1e6, g.BottleneckWhy[0])
		return
	}
	if late > early+early/4+4<<20 {
		t.Errorf("the heap's floor grew from %.1f to %.1f MB after warm-up", float64(early)/1e6, float64(late)/1e6)
	}
}
