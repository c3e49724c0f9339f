package runner

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// mergeMeasured adds up the end-to-end accounting of rs into s.Measured.
func (s *Summary) mergeMeasured(rs []Report) error {
	a := &measuredMerge{byKind: map[kindClass]*MeasuredKind{}, hists: map[kindClass][]measure.Portable{}}
	for _, r := range rs {
		a.add(r, &s.Measured)
	}
	cross, err := s.mergeStreams(rs, a.totals)
	if err != nil {
		return err
	}
	if err := s.finishMeasured(a); err != nil {
		return err
	}
	s.mergeClocks(rs, cross)
	m := &s.Measured
	if !a.first.IsZero() && a.last.After(a.first) {
		m.WindowStart, m.Window = a.first, a.last.Sub(a.first)
		m.Throughput = float64(m.All.Totals.Delivered) / m.Window.Seconds()
	}
	return nil
}

// measuredMerge collects the reports' accounting and histograms for mergeMeasured.
type measuredMerge struct {
	byKind                map[kindClass]*MeasuredKind
	hists                 map[kindClass][]measure.Portable
	all, lag, ack, genLag []measure.Portable
	tooLate               uint64
	first, last           time.Time // the traffic's window
}

// add takes one report's part, and its plain counts into m.
func (a *measuredMerge) add(r Report, m *Measured) {
	rm := &r.Measured
	for _, k := range rm.ByKind {
		a.totals(k.Kind, k.QoS).Add(k.Totals)
	}
	for _, h := range r.Portable.Latency {
		c := kindClass{h.Kind, h.QoS}
		a.hists[c] = append(a.hists[c], h.Latency)
		a.all = append(a.all, h.Latency)
	}
	a.tooLate += rm.All.Totals.TooLate
	a.lag, a.ack, a.genLag = append(a.lag, r.Portable.Lag), append(a.ack, r.Portable.Ack), append(a.genLag, r.Portable.GeneratorLag)
	addPublishing(m, rm)
	if !rm.WindowStart.IsZero() {
		if a.first.IsZero() || rm.WindowStart.Before(a.first) {
			a.first = rm.WindowStart
		}
		if end := rm.WindowStart.Add(rm.Window); end.After(a.last) {
			a.last = end
		}
	}
}

// totals are the merged totals of a receiving kind and QoS.
func (a *measuredMerge) totals(kind string, qos int) *measure.Totals {
	c := kindClass{kind, qos}
	if a.byKind[c] == nil {
		a.byKind[c] = &MeasuredKind{Kind: kind, QoS: qos}
	}
	return &a.byKind[c].Totals
}

// finishMeasured settles the merged rows and their percentiles, from merged histograms.
func (s *Summary) finishMeasured(a *measuredMerge) error {
	m := &s.Measured
	var err error
	for c, k := range a.byKind {
		if k.Latency, err = percentilesOfAll(a.hists[c]); err != nil {
			return fmt.Errorf("latency of %s QoS %d: %w", c.kind, c.qos, err)
		}
		m.ByKind = append(m.ByKind, *k)
		m.All.Totals.Add(k.Totals)
	}
	m.All.Totals.TooLate = a.tooLate // reports keep it only in their totals
	slices.SortFunc(m.ByKind, func(a, b MeasuredKind) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.QoS, b.QoS)) })
	m.All.Kind, m.All.QoS = "all", -1
	if m.All.Latency, err = percentilesOfAll(a.all); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	for _, p := range []struct {
		to   *measure.Percentiles
		port *measure.Portable
		from []measure.Portable
	}{{&m.Lag, &s.Portable.Lag, a.lag}, {&m.Ack, &s.Portable.Ack, a.ack}, {&m.GeneratorLag, &s.Portable.GeneratorLag, a.genLag}} {
		if *p.port, err = measure.MergePortable(p.from...); err != nil {
			return err
		}
		if *p.to, err = p.port.Percentiles(); err != nil {
			return err
		}
	}
	return s.mergeKindHistograms(a.hists)
}

// kindClass is a receiving kind and QoS: a row of the end-to-end table.
type kindClass struct {
	kind string
	qos  int
}

// mergeKindHistograms keeps the merged histograms in the merged summary's Portable.
func (s *Summary) mergeKindHistograms(hists map[kindClass][]measure.Portable) error {
	for c, hs := range hists {
		h, err := measure.MergePortable(hs...)
		if err != nil {
			return err
		}
		s.Portable.Latency = append(s.Portable.Latency, KindHistogram{Kind: c.kind, QoS: c.qos, Latency: h})
	}
	slices.SortFunc(s.Portable.Latency, func(a, b KindHistogram) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.QoS, b.QoS))
	})
	return nil
}

func percentilesOfAll(ps []measure.Portable) (measure.Percentiles, error) {
	h, err := measure.MergePortable(ps...)
	if err != nil {
		return measure.Percentiles{}, err
	}
	return h.Percentiles()
}

// addPublishing adds the schedules' and the receivers' plain counts of o to m.
func addPublishing(m, o *Measured) {
	m.Scheduled += o.Scheduled
	m.Late += o.Late
	m.GeneratorLate += o.GeneratorLate
	m.Due += o.Due
	m.Sent += o.Sent
	m.Shed += o.Shed
	m.Behind += o.Behind
	m.HeldBack += o.HeldBack
	m.Waiting += o.Waiting
	m.UnmeasuredOut += o.UnmeasuredOut
	m.UnmeasuredIn += o.UnmeasuredIn
	m.Forged += o.Forged
	m.Retained += o.Retained
}

// mergeRest merges what is not end-to-end accounting: the kinds, links, connections, the
// generators, errors and thresholds.
func (s *Summary) mergeRest(rs []Report) {
	brokers, clients, protocols := []string{}, []string{}, []string{}
	var end time.Time
	kinds := map[string]*KindSummary{}
	seenTh := map[string]bool{}
	g := &s.Measured.Generator
	var coreSeconds float64
	for _, r := range rs {
		if !slices.Contains(brokers, r.Broker) {
			brokers = append(brokers, r.Broker)
		}
		if !slices.Contains(clients, r.Client) {
			clients = append(clients, r.Client)
		}
		if !slices.Contains(protocols, r.Protocol) {
			protocols = append(protocols, r.Protocol)
		}
		if s.Started.IsZero() || r.Started.Before(s.Started) {
			s.Started = r.Started
		}
		if e := r.Started.Add(r.Elapsed); e.After(end) {
			end = e
		}
		s.Interrupted = s.Interrupted || r.Interrupted
		for _, k := range r.Kinds {
			if kinds[k.Kind] == nil {
				kinds[k.Kind] = &KindSummary{Kind: k.Kind}
			}
			kinds[k.Kind].add(k)
		}
		s.Errors = append(s.Errors, prefixed(r, r.Errors)...)
		for _, t := range r.Thresholds {
			if !seenTh[t.Threshold] {
				seenTh[t.Threshold] = true
				s.Thresholds = append(s.Thresholds, ThresholdResult{Threshold: t.Threshold})
			}
		}
		mergeConnections(&s.Connections, r.Connections)
		mergeGenerator(g, r)
		coreSeconds += float64(r.Measured.Generator.Cores) * r.Elapsed.Seconds()
	}
	s.Broker = strings.Join(brokers, ", ")
	s.Client, s.Protocol = strings.Join(clients, ", "), strings.Join(protocols, ", ")
	s.Elapsed = end.Sub(s.Started)
	if coreSeconds > 0 {
		g.Utilisation = g.CPU.Seconds() / coreSeconds
	}
	for _, k := range kinds {
		s.Kinds = append(s.Kinds, *k)
		g.Devices += k.Devices
	}
	slices.SortFunc(s.Kinds, func(a, b KindSummary) int { return strings.Compare(a.Kind, b.Kind) })
	s.Links = mergeLinks(rs)
}

func mergeConnections(c *ConnSummary, o ConnSummary) {
	c.Connections += o.Connections
	c.Connects += o.Connects
	c.Lost += o.Lost
	c.PeakPerSecond += o.PeakPerSecond // the shards' peaks may not coincide: at most this
	c.Episodes += o.Episodes
	c.Longest = max(c.Longest, o.Longest)
	c.Unhealed = c.Unhealed || o.Unhealed
	c.StillDown += o.StillDown
}

// mergeGenerator adds a shard's generator: its CPU and cores add up, a shard's limit is the
// run's (marked with the shard), and the runtime settings are the largest any shard had.
func mergeGenerator(g *Generator, r Report) {
	o := &r.Measured.Generator
	g.CPU += o.CPU
	g.Cores += o.Cores
	g.GCCycles += o.GCCycles
	g.GCPause += o.GCPause
	g.MaxInFlight += o.MaxInFlight
	g.BrokerDropped += o.BrokerDropped
	g.InboxDropped += o.InboxDropped
	if o.Bottleneck {
		g.Bottleneck = true
		g.BottleneckWhy = append(g.BottleneckWhy, prefixed(r, o.BottleneckWhy)...)
	}
	g.MaxRSS = max(g.MaxRSS, o.MaxRSS)
	g.GOMAXPROCS = max(g.GOMAXPROCS, o.GOMAXPROCS)
	g.GOGC = max(g.GOGC, o.GOGC)
	g.MemoryLimit = max(g.MemoryLimit, o.MemoryLimit)
	g.StartingStack = max(g.StartingStack, o.StartingStack)
	g.WakeBatch = max(g.WakeBatch, o.WakeBatch)
}

// mergeLinks adds up the links of each profile (the same name and figures).
func mergeLinks(rs []Report) []LinkSummary {
	var out []LinkSummary
	var held [][]measure.Portable
	for _, r := range rs {
		for _, l := range r.Links {
			i := slices.IndexFunc(out, func(o LinkSummary) bool {
				return o.Profile == l.Profile && o.UpRate == l.UpRate && o.DownRate == l.DownRate && o.Latency == l.Latency && o.Jitter == l.Jitter
			})
			if i < 0 {
				out = append(out, LinkSummary{Profile: l.Profile, UpRate: l.UpRate, DownRate: l.DownRate, Latency: l.Latency, Jitter: l.Jitter})
				held = append(held, nil)
				i = len(out) - 1
			}
			o := &out[i]
			// Achieved rates are per link: weigh each shard's by its links.
			o.AchievedUp += l.AchievedUp * float64(l.Links)
			o.AchievedDn += l.AchievedDn * float64(l.Links)
			o.Links += l.Links
			o.BytesUp += l.BytesUp
			o.BytesDown += l.BytesDown
			o.WaitUp += l.WaitUp
			o.Outages += l.Outages
			o.Connects += l.Connects
			o.HeldLate += l.HeldLate
			o.Shed += l.Shed
			held[i] = append(held[i], l.HeldHist)
		}
	}
	for i := range out {
		o := &out[i]
		if o.Links > 0 {
			o.AchievedUp /= float64(o.Links)
			o.AchievedDn /= float64(o.Links)
		}
		if h, err := measure.MergePortable(held[i]...); err == nil {
			o.HeldHist = h
			o.Held, _ = h.Percentiles()
		}
	}
	return out
}
