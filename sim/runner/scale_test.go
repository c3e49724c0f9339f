//go:build !race

// The race detector instruments every call, so stacks measured under it say nothing about
// a normal build; these tests run without -race (make test runs them separately).

package runner_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetsim/fleetsim/devices"
	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/runner"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// TestWaitingLoadDevicesStaySmall runs a fleet of load devices that publish and then wait,
// and checks the bars a million-device run depends on: a waiting device's goroutine keeps
// the 2 KiB stack it started with, and the heap it holds (its goroutine's descriptor
// included) stays near what the README's scale table counts on.
func TestWaitingLoadDevicesStaySmall(t *testing.T) {
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const homes, perHome = 200, 100
	kinds := devices.Kinds()
	params := kinds["load"].NewParams()
	// Each device sends once at its start (1/s for half a second: one send, never two back
	// to back, which a device behind its schedule would make on its own goroutine, growing
	// its stack), then sleeps on the alarm until its next send, some 17 minutes away; by
	// the time the probe looks, the workers that sent for them have been idle long enough
	// to end.
	params.(*devices.LoadParams).Phases = []devices.LoadPhase{{For: 500 * time.Millisecond, Rate: 1}, {For: time.Hour, Rate: 0.001}}
	s := &scenario.Scenario{File: "scale.yaml", Name: "scale", Duration: 4 * time.Second, Seed: 1, Homes: homes,
		TopicPrefix: "home/{home}", Connections: scenario.Connections{Mode: scenario.Pool, PoolSize: 2},
		Groups: []scenario.Group{{Kind: "load", Name: "load", Count: perHome, MaxRate: 10, Topic: scenario.DefaultTopic, Params: params}}}
	var stack, heap uint64
	base := memory() // what other tests left behind is not this run's
	probe := time.AfterFunc(3500*time.Millisecond, func() {
		now := memory()
		stack = (now.StackInuse - min(base.StackInuse, now.StackInuse)) / (homes * perHome)
		heap = (now.HeapAlloc - min(base.HeapAlloc, now.HeapAlloc)) / (homes * perHome)
	})
	defer probe.Stop()
	sum, err := runner.Run(context.Background(), runner.Config{Scenario: s, Kinds: kinds, Metrics: metrics.New(prometheus.NewRegistry(), "scale"),
		Conn:                mqttconn.Options{Broker: b.URL(), ConnectTimeout: 5 * time.Second},
		AllowGeneratorLimit: true}) // memory is the question: 20,000 first sends in half a second may lag under -race
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes of stack and %d of heap per device while %d devices wait (the run's other goroutines and fixed costs included)",
		stack, heap, homes*perHome)
	if sum.Measured.Scheduled < homes*perHome {
		t.Fatalf("%d scheduled sends, want every device to have sent", sum.Measured.Scheduled)
	}
	if stack > 2600 { // the run's other goroutines (clients, broker) add a little; a grown stack is 4096
		t.Errorf("%d bytes of stack per device, want about 2048", stack)
	}
	// About 460 for the goroutine's descriptor and 800 for the rest (README, Scale), and
	// the run's fixed costs spread over the fleet: measured 990-1,480 in one process,
	// depending on what ran before. A timer and a channel of its own would add 370.
	if heap > 1700 {
		t.Errorf("%d bytes of heap per waiting device, want about 1,300", heap)
	}
}

func memory() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}
