package runner

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
)

// TestTwoShardsInOneProcess runs the two shards of a run side by side on the embedded
// broker: a streamer in home 1 (shard 1) and a listener in each home. Shard 2's clock is
// 500 ms ahead; it measures that against shard 1, its latencies are on shard 1's clock,
// the reports merge to every message delivered twice (once per listener) and nothing
// lost, and no goroutine outlives the runs (shard 1's answering of pings included).
func TestTwoShardsInOneProcess(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := embedded(t)
	defer b.Close()
	s := streamScenario(0, 50, 50, false)
	s.Homes = 2
	s.Groups[1].Homes = 1 // the streamer only in home 1
	at := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	reports := make([]Report, 2)
	for i := range 2 {
		wg.Go(func() {
			cfg := Config{Scenario: s, Kinds: measureKinds, Metrics: metrics.New(prometheus.NewRegistry(), s.Name), Grace: 2 * time.Second,
				Conn:  mqttconn.Options{Broker: b.URL(), ConnectTimeout: 5 * time.Second},
				Shard: Shard{i + 1, 2}, StartAt: at, RunID: RunID(s.Name, s.Seed, at), AllowGeneratorLimit: true}
			if i == 1 {
				cfg.ClockSkew = 500 * time.Millisecond
			}
			sum, err := Run(context.Background(), cfg)
			if err != nil {
				t.Errorf("shard %d/2: %v", i+1, err)
				return
			}
			var buf bytes.Buffer // as the report file carries it
			if err := sum.WriteJSON(&buf); err != nil {
				t.Error(err)
			}
			back, err := ReadReport(&buf)
			if err != nil {
				t.Errorf("shard %d/2's report: %v", i+1, err)
				return
			}
			reports[i] = Report{Name: Shard{i + 1, 2}.String(), Summary: back}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	c := reports[1].Clocks
	if len(c) != 1 || !c[0].Measured || c[0].Offset > -495*time.Millisecond || c[0].Offset < -505*time.Millisecond || c[0].Uncertainty > 5*time.Millisecond {
		t.Errorf("shard 2's clock %+v: want -500ms measured within 5ms", c)
	}
	sum, err := Merge(reports)
	if err != nil {
		t.Fatal(err)
	}
	k := byKind(t, sum, "listener", 0)
	if k.Totals.Delivered != 100 || k.Totals.Lost != 0 || k.Latency.Count != 100 || k.Latency.Max > 250*time.Millisecond || k.Latency.Min < 0 {
		t.Errorf("merged %+v, latency %+v: want 100 delivered on one clock (not 500 ms off: a loaded machine's delay stays well under 250 ms), none lost", k.Totals, k.Latency)
	}
}
