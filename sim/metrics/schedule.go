package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Schedules reports, per kind and read at scrape time, what the open-model schedules of the
// devices that keep one (sim.Scheduled) called for: fleetsim_publish_due_total (sends due so
// far) and fleetsim_publish_backlog (of those, sends not yet made: a generator that is behind
// shows here; at the end of a run, what it never sent).
type Schedules struct {
	mu      sync.Mutex
	sources []scheduleSource

	due, backlog *prometheus.Desc
}

type scheduleSource struct {
	kind  string
	count func() (due, made uint64)
}

func newSchedules() *Schedules {
	return &Schedules{
		due: prometheus.NewDesc("fleetsim_publish_due_total",
			"Sends that devices' schedules called for so far (devices that keep an open-model schedule, such as load).", []string{"kind"}, nil),
		backlog: prometheus.NewDesc("fleetsim_publish_backlog",
			"Sends due and not yet made: how far behind its schedules the generator is.", []string{"kind"}, nil),
	}
}

// Add reports the schedules of one kind; count is called at every scrape and returns the
// sends due so far and the sends made.
func (s *Schedules) Add(kind string, count func() (due, made uint64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources = append(s.sources, scheduleSource{kind, count})
}

func (s *Schedules) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.due
	ch <- s.backlog
}

func (s *Schedules) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	sources := append([]scheduleSource(nil), s.sources...)
	s.mu.Unlock()
	for _, src := range sources {
		due, made := src.count()
		ch <- prometheus.MustNewConstMetric(s.due, prometheus.CounterValue, float64(due), src.kind)
		ch <- prometheus.MustNewConstMetric(s.backlog, prometheus.GaugeValue, float64(due-min(made, due)), src.kind)
	}
}
