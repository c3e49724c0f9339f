package runner_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetsim/fleetsim/devices"
	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/link"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/runner"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// TestPipelinedLoadOutrunsTheRoundTrip sends 40 QoS 1 or 2 messages a second from one load
// device over a link with 200 ms each way: a round trip of 400 ms, in which a device with
// one publish in flight sends 2.5 (QoS 1). On the lean client a load device pipelines its
// publishes, so it keeps its schedule and every message arrives; on paho, which waits for
// each acknowledgement, the same device falls behind by the round trip, which shows that
// the link is what the lean device outran.
func TestPipelinedLoadOutrunsTheRoundTrip(t *testing.T) {
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const rate, lasts = 40, 2 * time.Second
	for _, c := range []struct {
		client string
		qos    byte
	}{{scenario.ClientLean, 1}, {scenario.ClientLean, 2}, {scenario.ClientPaho, 1}} {
		t.Run(fmt.Sprintf("%s QoS %d", c.client, c.qos), func(t *testing.T) {
			slow := &link.Profile{Name: "slow", Latency: 200 * time.Millisecond}
			phases := []devices.LoadPhase{{For: 300 * time.Millisecond, Rate: 0}, {For: lasts, Rate: rate}}
			s := &scenario.Scenario{File: "pipeline.yaml", Name: "pipeline", Duration: 300*time.Millisecond + lasts + 200*time.Millisecond,
				Seed: 1, Homes: 1, TopicPrefix: "p", Connections: scenario.Connections{Mode: scenario.PerDevice},
				Groups: []scenario.Group{
					{Kind: "sink", Name: "sink", Count: 1, QoS: c.qos, MaxRate: 1, Topic: "p/sink", Params: &devices.SinkParams{Subscribe: []string{"p/load/#"}}},
					{Kind: "load", Name: "load", Count: 1, QoS: c.qos, MaxRate: 1000, Topic: "p/load/{id}", Link: slow,
						Params: &devices.LoadParams{PayloadBytes: 64, Phases: phases}},
				}}
			sum, err := runner.Run(context.Background(), runner.Config{Scenario: s, Kinds: devices.Kinds(),
				Metrics: metrics.New(prometheus.NewRegistry(), s.Name), Grace: 3 * time.Second, AllowGeneratorLimit: true,
				Conn: mqttconn.Options{Broker: b.URL(), ConnectTimeout: 5 * time.Second}, Client: c.client})
			if err != nil {
				t.Fatal(err)
			}
			ms := sum.Measured
			var sink runner.MeasuredKind
			for _, k := range ms.ByKind {
				if k.Kind == "sink" {
					sink = k
				}
			}
			t.Logf("%s QoS %d: %d due, %d sent, %d late, lag p99 %v; sink %+v; at most %d in flight",
				c.client, c.qos, ms.Due, ms.Sent, ms.Late, ms.Lag.P99, sink.Totals, ms.Generator.MaxInFlight)
			due := uint64(rate * lasts.Seconds())
			if c.client == scenario.ClientPaho {
				// One publish a round trip: a quarter of the schedule at most.
				if ms.Sent > due/4 || ms.Late == 0 {
					t.Errorf("paho sent %d of %d due, %d late: want it held back by the round trip (the test's premise)", ms.Sent, ms.Due, ms.Late)
				}
				return
			}
			if ms.Due != due || ms.Sent != due || sink.Totals.Delivered != due || sink.Totals.Lost != 0 {
				t.Errorf("%d due, %d sent, %+v delivered: want all %d sent and delivered", ms.Due, ms.Sent, sink.Totals, due)
			}
			// Kept, the round trip notwithstanding: a device waiting for it would be ~400 ms
			// late on most sends. A loaded machine (this runs under -race too) may make a few
			// late by a few ms.
			if ms.Late > int64(due/10) || ms.Lag.P99 > 100*time.Millisecond {
				t.Errorf("%d sends late, lag p99 %v: want the schedule kept, the round trip notwithstanding", ms.Late, ms.Lag.P99)
			}
			if ms.Generator.MaxInFlight < 4 {
				t.Errorf("at most %d publishes in flight: want several (a round trip holds 16)", ms.Generator.MaxInFlight)
			}
		})
	}
}
