package runner

import (
	"cmp"
	"slices"
	"time"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// Measured is the end-to-end accounting of a run: what the receivers got of what was
// published, how late, and whether the generator kept up.
type Measured struct {
	ByKind []MeasuredKind // per receiving kind and QoS, sorted; only classes that saw something
	All    MeasuredKind   // every receiver together (Kind "all", QoS -1)

	Scheduled int64               // sends made on a schedule (PublishAt)
	Late      int64               // of those, sent more than LateAfter after their due time
	Lag       measure.Percentiles // due → sent, for scheduled sends
	Ack       measure.Percentiles // QoS 1 and 2: publish → acknowledgement
	// The part of Lag that is the generator's (CPU, scheduling, its queues): all of it but
	// the time a device on a shaped link waited for the link (LinkSummary.Held).
	GeneratorLag  measure.Percentiles
	GeneratorLate int64 // sends whose GeneratorLag was above LateAfter

	// The open-model schedules of the devices that keep one (sim.Scheduled): sends due
	// before the run stopped, and of those the ones sent and never sent (Shed). Of the shed
	// sends, Behind were the generator's doing, HeldBack the shaped links', and Waiting the
	// broker's or the network's: their devices were still waiting for a publish to complete
	// (see backlog). What is left of Shed was due in the last LateAfter before the stop.
	Due, Sent, Shed, Behind, HeldBack, Waiting uint64

	// Window is the time measured traffic flowed, from the first measured message's
	// intended send time to the last delivery; Throughput is delivered messages over it.
	Window      time.Duration
	WindowStart time.Time // zero when nothing was delivered
	Throughput  float64

	UnmeasuredOut, UnmeasuredIn int64 // payloads without a header (plain text)
	Forged                      int64 // received headers no publisher of the run sent
	Retained                    int64 // retained messages received (old news, not measured)
	Generator                   Generator
}

// MeasuredKind is what the receivers of one kind got at one QoS.
type MeasuredKind struct {
	Kind    string
	QoS     int
	Totals  measure.Totals
	Latency measure.Percentiles // intended send → delivery
}

// summariseMeasurement settles the accounting once the run has drained; sched is where the
// schedules stood when the run stopped.
func summariseMeasurement(m *measurement, gen Generator, elapsed time.Duration, devices []*port, sched backlog, brokerTrouble bool) Measured {
	out := Measured{Due: sched.due, Sent: sched.sent, Shed: sched.shed(), Behind: sched.behind, HeldBack: sched.heldBack(), Waiting: sched.waiting}
	kinds := m.kindList()
	var lat, lag, genLag, ack []*measure.Recorder
	for _, k := range kinds {
		for q := range 3 {
			t := k.tracker[q].FinishWith(m.lastSeq)
			p := k.latency[q].Snapshot()
			lat = append(lat, k.latency[q])
			if q > 0 {
				ack = append(ack, k.ack[q])
			}
			if t.Streams == 0 && p.Count == 0 {
				continue
			}
			out.ByKind = append(out.ByKind, MeasuredKind{Kind: k.kind, QoS: q, Totals: t, Latency: p})
			out.All.Totals.Add(t)
		}
		lag = append(lag, k.lag)
		genLag = append(genLag, k.genLag)
		out.Scheduled += k.scheduled.Load()
		out.Late += k.late.Load()
		out.GeneratorLate += k.genLate.Load()
		out.UnmeasuredOut += k.unmeasuredOut.Load()
		out.UnmeasuredIn += k.unmeasuredIn.Load()
		out.Forged += k.forged.Load()
		out.Retained += k.retained.Load()
	}
	slices.SortFunc(out.ByKind, func(a, b MeasuredKind) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.QoS, b.QoS)) })
	out.All.Kind, out.All.QoS = "all", -1
	out.All.Latency = measure.Combined(lat...)
	out.Lag = measure.Combined(lag...)
	out.GeneratorLag = measure.Combined(genLag...)
	out.Ack = measure.Combined(ack...)
	if out.Window = m.window.span(); out.Window > 0 {
		out.Throughput = float64(out.All.Totals.Delivered) / out.Window.Seconds()
		out.WindowStart = time.Unix(0, m.window.first.Load()).UTC()
	}
	for _, d := range devices {
		gen.InboxDropped += d.stats.dropped.Load()
	}
	gen.Devices = len(devices)
	gen.finish(elapsed, &out, brokerTrouble)
	out.Generator = gen
	return out
}

// Values are the run's results under the names thresholds use (measure.KnownMetrics).
func (s *Summary) Values() map[string]float64 {
	m := &s.Measured
	v := measure.Values(m.All.Latency, m.All.Totals, m.Window)
	v[measure.MetricLateSends] = float64(m.Late)
	v[measure.MetricShed] = float64(m.Shed)
	v[measure.MetricSentRatio] = 1
	if m.Due > 0 {
		v[measure.MetricSentRatio] = float64(m.Sent) / float64(m.Due)
	}
	return v
}

// CheckThresholds evaluates ts against the run and records the verdicts in the summary. It
// reports whether all passed.
func (s *Summary) CheckThresholds(ts []measure.Threshold) bool {
	values := s.Values()
	s.Thresholds = s.Thresholds[:0]
	pass := true
	for _, t := range ts {
		ok, detail := t.Check(values)
		pass = pass && ok
		s.Thresholds = append(s.Thresholds, ThresholdResult{Threshold: t.String(), OK: ok, Detail: detail})
	}
	return pass
}

// ThresholdResult is one threshold's verdict.
type ThresholdResult struct {
	Threshold string
	OK        bool
	Detail    string
}
