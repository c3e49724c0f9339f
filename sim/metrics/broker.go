package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetsim/fleetsim/sim/broker"
)

// RegisterBroker exposes the embedded broker's own counters, read from stats at scrape
// time, as fleetsim_broker_* metrics: what the broker saw, beside what the devices saw.
func RegisterBroker(reg prometheus.Registerer, stats func() broker.Stats) {
	metric := func(name, help string, counter bool, v func(broker.Stats) int64) prometheus.Collector {
		f := func() float64 { return float64(v(stats())) }
		if counter {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "fleetsim", Subsystem: "broker", Name: name, Help: help}, f)
		}
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "fleetsim", Subsystem: "broker", Name: name, Help: help}, f)
	}
	reg.MustRegister(
		metric("clients", "Clients connected to the embedded broker.", false, func(s broker.Stats) int64 { return s.ClientsConnected }),
		metric("subscriptions", "Subscriptions the embedded broker holds.", false, func(s broker.Stats) int64 { return s.Subscriptions }),
		metric("inflight", "QoS 1 and 2 messages the embedded broker awaits acknowledgements for.", false, func(s broker.Stats) int64 { return s.Inflight }),
		metric("retained", "Retained messages the embedded broker holds, its own $SYS topics included.", false, func(s broker.Stats) int64 { return s.Retained }),
		metric("messages_received_total", "PUBLISH packets the embedded broker received.", true, func(s broker.Stats) int64 { return s.MessagesReceived }),
		metric("messages_sent_total", "PUBLISH packets the embedded broker sent.", true, func(s broker.Stats) int64 { return s.MessagesSent }),
		metric("messages_dropped_total", "Messages the embedded broker dropped: a subscriber's queue was full or it had too many unacknowledged.", true,
			func(s broker.Stats) int64 { return s.MessagesDropped + s.InflightDropped }),
		metric("received_bytes_total", "Bytes the embedded broker received.", true, func(s broker.Stats) int64 { return s.BytesReceived }),
		metric("sent_bytes_total", "Bytes the embedded broker sent.", true, func(s broker.Stats) int64 { return s.BytesSent }),
	)
}
