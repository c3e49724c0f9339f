package metrics

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// Accounting reports end-to-end sequence accounting (measure.Tracker totals) per receiving
// kind and QoS, read at scrape time: fleetsim_messages_delivered_total (distinct measured
// messages), fleetsim_messages_lost_total (gaps that fell out of the window: final),
// fleetsim_messages_missing (gaps that may still fill), fleetsim_messages_duplicated_total
// and fleetsim_messages_reordered_total.
type Accounting struct {
	mu      sync.Mutex
	sources []accountingSource

	delivered, lost, missing, duplicated, reordered *prometheus.Desc
}

type accountingSource struct {
	kind, qos string
	totals    func() measure.Totals
}

func newAccounting() *Accounting {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("fleetsim_"+name, help, []string{"kind", "qos"}, nil)
	}
	return &Accounting{
		delivered:  d("messages_delivered_total", "Distinct measured messages that reached devices of this kind (end-to-end accounting; duplicates not counted)."),
		lost:       d("messages_lost_total", "Measured messages that never arrived: gaps in a publisher's sequence that did not fill in time."),
		missing:    d("messages_missing", "Measured messages missing from a sequence that may still arrive out of order."),
		duplicated: d("messages_duplicated_total", "Measured messages that arrived again after their first delivery."),
		reordered:  d("messages_reordered_total", "Measured messages that arrived after a later message of the same publisher."),
	}
}

// Add reports the totals of the receivers of one kind at one QoS; totals is called at every
// scrape. A kind and QoS that received no measured message has no series.
func (a *Accounting) Add(kind string, qos byte, totals func() measure.Totals) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sources = append(a.sources, accountingSource{kind, strconv.Itoa(int(qos)), totals})
}

func (a *Accounting) Describe(ch chan<- *prometheus.Desc) {
	ch <- a.delivered
	ch <- a.lost
	ch <- a.missing
	ch <- a.duplicated
	ch <- a.reordered
}

func (a *Accounting) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	sources := append([]accountingSource(nil), a.sources...)
	a.mu.Unlock()
	for _, s := range sources {
		t := s.totals()
		if t.Streams == 0 {
			continue // nothing measured for this kind and QoS: no series
		}
		ch <- prometheus.MustNewConstMetric(a.delivered, prometheus.CounterValue, float64(t.Delivered), s.kind, s.qos)
		ch <- prometheus.MustNewConstMetric(a.lost, prometheus.CounterValue, float64(t.Lost), s.kind, s.qos)
		ch <- prometheus.MustNewConstMetric(a.missing, prometheus.GaugeValue, float64(t.Missing), s.kind, s.qos)
		ch <- prometheus.MustNewConstMetric(a.duplicated, prometheus.CounterValue, float64(t.Duplicates), s.kind, s.qos)
		ch <- prometheus.MustNewConstMetric(a.reordered, prometheus.CounterValue, float64(t.OutOfOrder), s.kind, s.qos)
	}
}
