package runner

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// hoarder subscribes and never reads its inbox. As a sim.Discarder it must still be
// credited with every message, and the engine must queue none for it.
type hoarder struct {
	listener
	queued int // messages found in the inbox at the end
}

func (*hoarder) DiscardsInbox() {}

func (d *hoarder) Run(ctx context.Context, io sim.IO) error {
	if _, err := io.Subscribe(ctx, d.p.Filter, d.cfg.QoS); err != nil {
		return err
	}
	<-ctx.Done()
	d.queued = len(io.Inbox())
	return nil
}

func TestDiscarderGetsEverythingAndQueuesNothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := embedded(t)
	defer b.Close()
	var built []*hoarder
	kinds := map[string]sim.Kind{
		"streamer": measureKinds["streamer"],
		"listener": sim.NewKind("hoarding listener", func() listenParams { return listenParams{} },
			func(cfg sim.DeviceConfig, p listenParams) (sim.Device, error) {
				d := &hoarder{listener: listener{cfg, p}}
				built = append(built, d)
				return d, nil
			}),
	}
	// Far more than an inbox holds, and as fast as the streamer can: a device that
	// never reads would drop nearly all of them if they were queued for it.
	const n = 2000
	s := streamScenario(0, 20_000, n, false)
	s.Connections = scenario.Connections{Mode: scenario.PerDevice}
	sum, err := Run(context.Background(), Config{Scenario: s, Kinds: kinds, Metrics: metrics.New(prometheus.NewRegistry(), s.Name),
		Grace: 2 * time.Second, Conn: mqttconn.Options{Broker: b.URL(), ConnectTimeout: 5 * time.Second},
		AllowGeneratorLimit: true}) // 20,000 a second may be late on a busy machine: not the question
	if err != nil {
		t.Fatal(err)
	}
	k := byKind(t, sum, "listener", 0)
	if k.Totals.Delivered != n || k.Totals.Lost != 0 {
		t.Errorf("totals %+v, want all %d delivered", k.Totals, n)
	}
	for _, ks := range sum.Kinds {
		if ks.Kind == "listener" && (ks.In != n || ks.Dropped != 0) {
			t.Errorf("listener received %d and dropped %d, want %d and none", ks.In, ks.Dropped, n)
		}
	}
	if len(built) != 1 || built[0].queued != 0 {
		t.Errorf("%d hoarders built; want one with an empty inbox at the end", len(built))
	}
}
