package metrics

import "github.com/prometheus/client_golang/prometheus"

// BrokerStats are the embedded MQTT broker's counters as RegisterBroker exports them.
type BrokerStats struct {
	Clients          int64 // clients connected now
	Subscriptions    int64 // subscriptions held now
	Inflight         int64 // QoS 1 and 2 messages awaiting acknowledgement now
	Retained         int64 // retained messages held now, the broker's own $SYS topics included
	MessagesReceived int64 // PUBLISH packets received, total
	MessagesSent     int64 // PUBLISH packets sent, total
	// MessagesDropped counts messages not delivered, total: a subscriber's queue was full,
	// or it had too many unacknowledged.
	MessagesDropped int64
	BytesReceived   int64 // total
	BytesSent       int64 // total
}

// Broker is what RegisterBroker reads a broker's counters through, once per scrape. It is
// this package's own, so that metrics depends on no broker: the CLI hands it the embedded
// one (sim/broker), a test a fake.
type Broker interface {
	BrokerStats() BrokerStats
}

// RegisterBroker exposes b's counters, read from it at scrape time, as fleetsim_broker_*
// metrics: what the broker saw, beside what the devices saw.
func RegisterBroker(reg prometheus.Registerer, b Broker) {
	reg.MustRegister(newBrokerCollector(b))
}

// brokerCollector reads one BrokerStats per scrape, so the metrics of a scrape agree.
type brokerCollector struct {
	b       Broker
	metrics []brokerMetric
}

type brokerMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(BrokerStats) int64
}

func newBrokerCollector(b Broker) *brokerCollector {
	c := &brokerCollector{b: b}
	add := func(name, help string, kind prometheus.ValueType, v func(BrokerStats) int64) {
		desc := prometheus.NewDesc(prometheus.BuildFQName("fleetsim", "broker", name), help, nil, nil)
		c.metrics = append(c.metrics, brokerMetric{desc: desc, kind: kind, value: v})
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	add("clients", "Clients connected to the embedded broker.", gauge, func(s BrokerStats) int64 { return s.Clients })
	add("subscriptions", "Subscriptions the embedded broker holds.", gauge, func(s BrokerStats) int64 { return s.Subscriptions })
	add("inflight", "QoS 1 and 2 messages the embedded broker awaits acknowledgements for.", gauge, func(s BrokerStats) int64 { return s.Inflight })
	add("retained", "Retained messages the embedded broker holds, its own $SYS topics included.", gauge, func(s BrokerStats) int64 { return s.Retained })
	add("messages_received_total", "PUBLISH packets the embedded broker received.", counter, func(s BrokerStats) int64 { return s.MessagesReceived })
	add("messages_sent_total", "PUBLISH packets the embedded broker sent.", counter, func(s BrokerStats) int64 { return s.MessagesSent })
	add("messages_dropped_total", "Messages the embedded broker dropped: a subscriber's queue was full or it had too many unacknowledged.", counter,
		func(s BrokerStats) int64 { return s.MessagesDropped })
	add("received_bytes_total", "Bytes the embedded broker received.", counter, func(s BrokerStats) int64 { return s.BytesReceived })
	add("sent_bytes_total", "Bytes the embedded broker sent.", counter, func(s BrokerStats) int64 { return s.BytesSent })
	return c
}

// Describe implements prometheus.Collector.
func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.BrokerStats()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, float64(m.value(s)))
	}
}
