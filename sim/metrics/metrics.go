// Package metrics defines fleetsim's Prometheus metrics (DESIGN.md §5): prefix fleetsim_,
// base units, bounded labels (kind, qos, state, result — never a device id or topic). The
// caller owns the registry; nothing here touches a global one.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the run's instruments. Hot paths resolve their label values once (see For).
type Metrics struct {
	Published       *prometheus.CounterVec // kind, qos
	PublishedBytes  *prometheus.CounterVec // kind, qos
	PublishFailures *prometheus.CounterVec // kind, qos
	Received        *prometheus.CounterVec // kind, qos
	ReceivedBytes   *prometheus.CounterVec // kind, qos
	Rejected        *prometheus.CounterVec // kind
	Dropped         *prometheus.CounterVec // kind
	StateChanges    *prometheus.CounterVec // kind
	DevicesInState  *prometheus.GaugeVec   // kind, state
	Devices         *prometheus.GaugeVec   // kind
	Connections     prometheus.Gauge
	ConnectAttempts *prometheus.CounterVec // result
	ConnectionsLost prometheus.Counter
	// Malformed counts connections dropped for bytes from the broker that did not decode
	// (the lean client's; paho's reader gives such a drop no cause of its own).
	Malformed prometheus.Counter
	Transport *prometheus.GaugeVec // client, protocol: 1 for the run's MQTT client
	Links     *Links               // shaped links, per profile

	// Measurement (DESIGN.md §4).
	Latency         *prometheus.HistogramVec // kind (of the receiver), qos: intended send → receive
	PublishAck      *prometheus.HistogramVec // kind, qos (1, 2): publish → acknowledgement
	ScheduleLag     *prometheus.HistogramVec // kind: due → sent, for scheduled sends
	PublishLate     *prometheus.CounterVec   // kind: scheduled sends that left late
	GeneratorLate   *prometheus.CounterVec   // kind: of those, late for the generator's own reasons
	Schedules       *Schedules               // sends due and not yet made
	PublishInFlight prometheus.Gauge         // publishes waiting for the connection or an ack
	Unmeasured      *prometheus.CounterVec   // kind, direction: payloads without a measurement header
	Forged          *prometheus.CounterVec   // kind: measurement headers that no publisher of this run sent
	Accounting      *Accounting              // end-to-end loss, duplicates, reordering
}

// Histogram layout: native histograms with a bucket growth factor of 1.1 (about 5 %
// resolution), capped at 160 buckets, and classic buckets beside them for Prometheus
// servers that do not scrape native histograms.
const (
	nativeFactor     = 1.1
	nativeMaxBuckets = 160
)

// latencyBuckets are the classic buckets of the latency histograms, in seconds: 100 µs to
// 30 s, enough to tell loopback from a satellite hop.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New creates the metrics and registers them on reg. scenario becomes a constant label.
func New(reg prometheus.Registerer, scenario string) *Metrics {
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"scenario": scenario}, reg)
	kq := []string{"kind", "qos"}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "fleetsim", Name: name, Help: help}, labels)
		reg.MustRegister(c)
		return c
	}
	m := &Metrics{
		Published:       counter("messages_published_total", "Messages devices published and the broker accepted (written for QoS 0, acknowledged for QoS 1 and 2).", kq...),
		PublishedBytes:  counter("published_payload_bytes_total", "Payload bytes of published messages.", kq...),
		PublishFailures: counter("publish_failures_total", "Publishes that failed or timed out.", kq...),
		Received:        counter("messages_received_total", "Messages delivered to devices by their subscriptions.", kq...),
		ReceivedBytes:   counter("received_payload_bytes_total", "Payload bytes of messages delivered to devices.", kq...),
		Rejected:        counter("messages_rejected_total", "Received payloads a device could not use (bad JSON, wrong types, out of range).", "kind"),
		Dropped:         counter("messages_dropped_total", "Received messages dropped because the device's inbox was full.", "kind"),
		StateChanges:    counter("device_state_changes_total", "State changes devices made.", "kind"),
		DevicesInState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "fleetsim", Name: "devices_in_state",
			Help: "Devices currently in each state."}, []string{"kind", "state"}),
		Devices: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "fleetsim", Name: "devices",
			Help: "Devices running."}, []string{"kind"}),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "fleetsim", Name: "connections",
			Help: "MQTT connections currently open."}),
		ConnectAttempts: counter("connection_attempts_total", "Connection attempts by result (ok, error).", "result"),
		ConnectionsLost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "fleetsim", Name: "connections_lost_total",
			Help: "Established connections that dropped."}),
		Malformed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "fleetsim", Name: "connections_malformed_total",
			Help: "Connections dropped because the broker sent bytes that did not decode (also counted as lost)."}),
		Transport: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "fleetsim", Name: "transport_info",
			Help: "The MQTT client (paho or lean) and protocol version the run's connections use: 1."}, []string{"client", "protocol"}),
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "fleetsim", Name: name, Help: help,
			Buckets:                         latencyBuckets,
			NativeHistogramBucketFactor:     nativeFactor,
			NativeHistogramMaxBucketNumber:  nativeMaxBuckets,
			NativeHistogramMinResetDuration: time.Hour,
		}, labels)
		reg.MustRegister(h)
		return h
	}
	m.Latency = histogram("message_latency_seconds", "End-to-end latency of measured messages, from the intended send time to delivery, by receiving kind.", kq...)
	m.PublishAck = histogram("publish_ack_seconds", "Time from sending a QoS 1 or 2 publish to its acknowledgement.", kq...)
	m.ScheduleLag = histogram("schedule_lag_seconds", "How long after its due time a scheduled send went out.", "kind")
	m.PublishLate = counter("publish_late_total", "Scheduled sends that went out more than 10ms after their due time.", "kind")
	m.GeneratorLate = counter("generator_late_sends_total", "Scheduled sends more than 10ms late for the generator's own reasons (CPU, scheduling, its queues), not waiting for the device's shaped link.", "kind")
	m.PublishInFlight = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "fleetsim", Name: "publish_in_flight",
		Help: "Publishes sent and not yet complete (the generator's publish backlog)."})
	m.Unmeasured = counter("messages_unmeasured_total", "Payloads without a measurement header (plain text), by direction (out, in).", "kind", "direction")
	m.Forged = counter("messages_forged_total", "Received measurement headers that no publisher of this run sent (forged or from another run).", "kind")
	m.Links = newLinks()
	m.Accounting = newAccounting()
	m.Schedules = newSchedules()
	reg.MustRegister(m.DevicesInState, m.Devices, m.Connections, m.ConnectionsLost, m.Malformed, m.Transport, m.Links, m.PublishInFlight, m.Accounting, m.Schedules)
	return m
}

// Kind holds one kind's counters with labels resolved, so the per-message path does no
// label lookups.
type Kind struct {
	Published, PublishedBytes, PublishFailures [3]prometheus.Counter
	Received, ReceivedBytes                    [3]prometheus.Counter
	Rejected, Dropped, StateChanges            prometheus.Counter
	Latency, PublishAck                        [3]prometheus.Observer
	ScheduleLag                                prometheus.Observer
	PublishLate, UnmeasuredOut, UnmeasuredIn   prometheus.Counter
	GeneratorLate                              prometheus.Counter
	Forged                                     prometheus.Counter
	states                                     *prometheus.GaugeVec
	kind                                       string
	stateMu                                    sync.RWMutex
	stateGauges                                map[string]prometheus.Gauge
}

// For resolves the counters of one kind.
func (m *Metrics) For(kind string) *Kind {
	k := &Kind{
		Rejected:      m.Rejected.WithLabelValues(kind),
		Dropped:       m.Dropped.WithLabelValues(kind),
		StateChanges:  m.StateChanges.WithLabelValues(kind),
		ScheduleLag:   m.ScheduleLag.WithLabelValues(kind),
		PublishLate:   m.PublishLate.WithLabelValues(kind),
		GeneratorLate: m.GeneratorLate.WithLabelValues(kind),
		UnmeasuredOut: m.Unmeasured.WithLabelValues(kind, "out"),
		UnmeasuredIn:  m.Unmeasured.WithLabelValues(kind, "in"),
		Forged:        m.Forged.WithLabelValues(kind),
		states:        m.DevicesInState,
		kind:          kind,
	}
	for q := range 3 {
		qs := strconv.Itoa(q)
		k.Published[q] = m.Published.WithLabelValues(kind, qs)
		k.PublishedBytes[q] = m.PublishedBytes.WithLabelValues(kind, qs)
		k.PublishFailures[q] = m.PublishFailures.WithLabelValues(kind, qs)
		k.Received[q] = m.Received.WithLabelValues(kind, qs)
		k.ReceivedBytes[q] = m.ReceivedBytes.WithLabelValues(kind, qs)
		k.Latency[q] = m.Latency.WithLabelValues(kind, qs)
		if q > 0 {
			k.PublishAck[q] = m.PublishAck.WithLabelValues(kind, qs)
		}
	}
	return k
}

// StateChanged moves one device from state from (empty for none) to state to. Devices call
// it on their own goroutines, so it stays shallow: a kind's few states are resolved once.
func (k *Kind) StateChanged(from, to string) {
	if from != "" {
		k.state(from).Dec()
		k.StateChanges.Inc()
	}
	k.state(to).Inc()
}

func (k *Kind) state(s string) prometheus.Gauge {
	k.stateMu.RLock()
	g := k.stateGauges[s]
	k.stateMu.RUnlock()
	if g != nil {
		return g
	}
	return k.resolveState(s)
}

//go:noinline
func (k *Kind) resolveState(s string) prometheus.Gauge {
	k.stateMu.Lock()
	defer k.stateMu.Unlock()
	if g := k.stateGauges[s]; g != nil {
		return g
	}
	if k.stateGauges == nil {
		k.stateGauges = map[string]prometheus.Gauge{}
	}
	g := k.states.WithLabelValues(k.kind, s)
	k.stateGauges[s] = g
	return g
}

// BuildInfo registers fleetsim_build_info{version, goversion} = 1.
func BuildInfo(reg prometheus.Registerer, version, goVersion string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "fleetsim", Name: "build_info",
		Help: "A metric with a constant 1 value labelled by fleetsim's version and Go version."}, []string{"version", "goversion"})
	g.WithLabelValues(version, goVersion).Set(1)
	reg.MustRegister(g)
}
