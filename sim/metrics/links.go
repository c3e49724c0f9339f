package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetsim/fleetsim/sim/link"
)

// Links reports the shaped links' counters, added up per profile at scrape time:
// fleetsim_link_bytes_total{profile,direction}, fleetsim_link_wait_seconds_total{profile,
// direction} (time spent waiting for bandwidth), fleetsim_link_outages_total{profile} and
// fleetsim_link_connects_total{profile} (connections opened over the links: the first ones
// and every reconnect). Wait, beside them, is the histogram of single waits for bandwidth.
type Links struct {
	mu    sync.Mutex
	stats map[string][]func() link.Stats // by profile name

	bytes, wait, outages, connects *prometheus.Desc
	// Wait is fleetsim_link_wait_seconds{profile,direction}: how long each write or read
	// waited for its link's bandwidth.
	Wait *prometheus.HistogramVec
}

func newLinks() *Links {
	return &Links{
		stats: map[string][]func() link.Stats{},
		bytes: prometheus.NewDesc("fleetsim_link_bytes_total", "Bytes that crossed shaped links, per profile and direction (up: device to broker).",
			[]string{"profile", "direction"}, nil),
		wait: prometheus.NewDesc("fleetsim_link_wait_seconds_total", "Time writes and reads waited for a shaped link's bandwidth.",
			[]string{"profile", "direction"}, nil),
		outages:  prometheus.NewDesc("fleetsim_link_outages_total", "Outages of shaped links.", []string{"profile"}, nil),
		connects: prometheus.NewDesc("fleetsim_link_connects_total", "Connections opened over shaped links: the first ones, then one per reconnect.", []string{"profile"}, nil),
		Wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "fleetsim", Name: "link_wait_seconds", Help: "How long single writes and reads waited for their shaped link's bandwidth.",
			Buckets:                         latencyBuckets,
			NativeHistogramBucketFactor:     nativeFactor,
			NativeHistogramMaxBucketNumber:  nativeMaxBuckets,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"profile", "direction"}),
	}
}

// Observe returns the wait observers of a link of the named profile, up and down, for
// link.Link.SetWaitObserver.
func (l *Links) Observe(profile string) (up, down func(time.Duration)) {
	u, d := l.Wait.WithLabelValues(profile, "up"), l.Wait.WithLabelValues(profile, "down")
	return func(w time.Duration) { u.Observe(w.Seconds()) }, func(w time.Duration) { d.Observe(w.Seconds()) }
}

// Add counts a link of the named profile; stats is read at every scrape.
func (l *Links) Add(profile string, stats func() link.Stats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats[profile] = append(l.stats[profile], stats)
}

// Totals adds up the links of each profile.
func (l *Links) Totals() map[string]LinkTotals {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]LinkTotals, len(l.stats))
	for profile, fns := range l.stats {
		t := LinkTotals{Links: len(fns)}
		for _, f := range fns {
			s := f()
			t.BytesUp += s.BytesUp
			t.BytesDown += s.BytesDown
			t.WaitUp += s.WaitUp.Seconds()
			t.WaitDown += s.WaitDown.Seconds()
			t.Outages += s.Outages
			t.Connects += s.Dials
		}
		out[profile] = t
	}
	return out
}

// LinkTotals are the added-up counters of one profile's links.
type LinkTotals struct {
	Links              int
	BytesUp, BytesDown int64
	WaitUp, WaitDown   float64 // seconds
	Outages            int64
	Connects           int64
}

func (l *Links) Describe(ch chan<- *prometheus.Desc) {
	ch <- l.bytes
	ch <- l.wait
	ch <- l.outages
	ch <- l.connects
	l.Wait.Describe(ch)
}

func (l *Links) Collect(ch chan<- prometheus.Metric) {
	for profile, t := range l.Totals() {
		ch <- prometheus.MustNewConstMetric(l.bytes, prometheus.CounterValue, float64(t.BytesUp), profile, "up")
		ch <- prometheus.MustNewConstMetric(l.bytes, prometheus.CounterValue, float64(t.BytesDown), profile, "down")
		ch <- prometheus.MustNewConstMetric(l.wait, prometheus.CounterValue, t.WaitUp, profile, "up")
		ch <- prometheus.MustNewConstMetric(l.wait, prometheus.CounterValue, t.WaitDown, profile, "down")
		ch <- prometheus.MustNewConstMetric(l.outages, prometheus.CounterValue, float64(t.Outages), profile)
		ch <- prometheus.MustNewConstMetric(l.connects, prometheus.CounterValue, float64(t.Connects), profile)
	}
	l.Wait.Collect(ch)
}
