package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsFollowConventionsAndCount(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg, "smart-home")
	BuildInfo(reg, "v0.0.0-test", "go1.26")

	bulb := m.For("bulb")
	bulb.Published[1].Inc()
	bulb.PublishedBytes[1].Add(120)
	bulb.StateChanged("", "off") // initial state: not a change
	bulb.StateChanged("off", "on")
	bulb.Received[0].Inc()

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	want := `
# HELP fleetsim_devices_in_state Devices currently in each state.
# TYPE fleetsim_devices_in_state gauge
fleetsim_devices_in_state{kind="bulb",scenario="smart-home",state="off"} 0
fleetsim_devices_in_state{kind="bulb",scenario="smart-home",state="on"} 1
# HELP fleetsim_device_state_changes_total State changes devices made.
# TYPE fleetsim_device_state_changes_total counter
fleetsim_device_state_changes_total{kind="bulb",scenario="smart-home"} 1
# HELP fleetsim_published_payload_bytes_total Payload bytes of published messages.
# TYPE fleetsim_published_payload_bytes_total counter
fleetsim_published_payload_bytes_total{kind="bulb",qos="0",scenario="smart-home"} 0
fleetsim_published_payload_bytes_total{kind="bulb",qos="1",scenario="smart-home"} 120
fleetsim_published_payload_bytes_total{kind="bulb",qos="2",scenario="smart-home"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"fleetsim_devices_in_state", "fleetsim_device_state_changes_total", "fleetsim_published_payload_bytes_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(m.Received.WithLabelValues("bulb", "0")); got != 1 {
		t.Errorf("received{bulb,0} = %v, want 1", got)
	}
}

// fakeBroker is a broker as RegisterBroker sees it.
type fakeBroker struct{ stats BrokerStats }

func (b *fakeBroker) BrokerStats() BrokerStats { return b.stats }

func TestBrokerMetricsReadStatsAtScrape(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	b := &fakeBroker{BrokerStats{Clients: 3, MessagesDropped: 3, BytesSent: 4096}}
	RegisterBroker(reg, b)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	b.stats.Clients = 5 // read again at the next scrape
	want := `
# HELP fleetsim_broker_clients Clients connected to the embedded broker.
# TYPE fleetsim_broker_clients gauge
fleetsim_broker_clients 5
# HELP fleetsim_broker_messages_dropped_total Messages the embedded broker dropped: a subscriber's queue was full or it had too many unacknowledged.
# TYPE fleetsim_broker_messages_dropped_total counter
fleetsim_broker_messages_dropped_total 3
# HELP fleetsim_broker_sent_bytes_total Bytes the embedded broker sent.
# TYPE fleetsim_broker_sent_bytes_total counter
fleetsim_broker_sent_bytes_total 4096
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"fleetsim_broker_clients", "fleetsim_broker_messages_dropped_total", "fleetsim_broker_sent_bytes_total"); err != nil {
		t.Error(err)
	}
}
