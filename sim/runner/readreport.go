package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// ReadReport reads a JSON report (WriteJSON's) back into a Summary, for Merge. It takes
// what the report holds: the per-device state paths and a few counts kept only in the
// process (Totals' gaps and missing seqs, the connections' Unhealed) are not in it.
func ReadReport(r io.Reader) (*Summary, error) {
	var j jsonReport
	dec := json.NewDecoder(r)
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("not a fleetsim JSON report: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a fleetsim JSON report: more than one JSON value")
	}
	switch {
	case j.Schema == "":
		return nil, errors.New("not a fleetsim JSON report: no schema field")
	case j.Schema != ReportSchema:
		return nil, fmt.Errorf("report schema %q, but this fleetsim reads %q", j.Schema, ReportSchema)
	case j.Scenario == "":
		return nil, errors.New("report has no scenario")
	case j.Histograms == nil:
		return nil, errors.New("report has no histograms (written by a fleetsim before shards); run it again with this fleetsim")
	}
	s := j.summary()
	if err := s.checkRead(&j); err != nil {
		return nil, err
	}
	return s, nil
}

// seconds turns a report's seconds back into the duration they were written from.
func seconds(v float64) time.Duration { return time.Duration(math.Round(v * 1e9)) }

func percentilesOf(l jsonLatency) measure.Percentiles {
	return measure.Percentiles{Count: l.Count, Min: seconds(l.Min), Mean: seconds(l.Mean), P50: seconds(l.P50), P90: seconds(l.P90),
		P99: seconds(l.P99), P999: seconds(l.P999), Max: seconds(l.Max)}
}

// summary is report's inverse.
func (j *jsonReport) summary() *Summary {
	s := &Summary{Scenario: j.Scenario, Broker: j.Broker, Client: j.Client, Protocol: j.Protocol, Started: j.Started, Elapsed: seconds(j.ElapsedSeconds), Interrupted: j.Interrupted,
		Verdict: j.Verdict, Reasons: j.Reasons, Errors: j.Errors}
	if len(s.Reasons) == 0 {
		s.Reasons = nil
	}
	if len(s.Errors) == 0 {
		s.Errors = nil
	}
	j.measured(&s.Measured)
	c := j.Connections
	s.Connections = ConnSummary{Connections: c.Opened, Connects: c.Connects, Lost: c.Lost, PeakPerSecond: c.PeakConnectsPerSecond,
		Episodes: c.Episodes, Longest: seconds(c.FullReconnectSeconds), StillDown: c.StillDown}
	for _, k := range j.Kinds {
		s.Kinds = append(s.Kinds, KindSummary{Kind: k.Kind, Devices: k.Devices, Out: k.Published, OutBytes: k.BytesOut, In: k.Received,
			InBytes: k.BytesIn, Changes: k.StateChanges, Rejected: k.Rejected, Dropped: k.Dropped, Failed: k.Failed})
		s.Measured.Generator.Devices += k.Devices
	}
	for _, l := range j.Links {
		ls := LinkSummary{Profile: l.Profile, Links: l.Links, UpRate: l.UpBytesPerSec, DownRate: l.DownBytesPerSec,
			Latency: seconds(l.DelaySeconds), Jitter: seconds(l.JitterSeconds), BytesUp: l.BytesUp, BytesDown: l.BytesDown,
			AchievedUp: l.AchievedUp, AchievedDn: l.AchievedDown, WaitUp: seconds(l.WaitedUpSeconds), Outages: l.Outages,
			Connects: l.Connects, Held: percentilesOf(l.Held), HeldLate: l.HeldLate, Shed: l.Shed}
		if l.HeldHistogram != nil {
			ls.HeldHist = *l.HeldHistogram
		}
		s.Links = append(s.Links, ls)
	}
	for _, t := range j.Thresholds {
		s.Thresholds = append(s.Thresholds, ThresholdResult(t))
	}
	j.portable(s)
	s.ClockNotes = j.ClockNotes
	for _, c := range j.Clocks {
		sh, _ := ParseShard(c.Shard) // checked in checkRead
		s.Clocks = append(s.Clocks, ClockEstimate{Shard: sh, Reference: c.Reference, Measured: c.Measured, Offset: seconds(c.Offset),
			Uncertainty: seconds(c.Uncertainty), RoundTrip: seconds(c.RoundTrip), Samples: c.Samples, Why: c.Why})
	}
	return s
}

func (j *jsonReport) measured(m *Measured) {
	t, p, g := j.Totals, j.Publishing, j.Generator
	m.All = MeasuredKind{Kind: "all", QoS: -1, Latency: percentilesOf(j.Latency), Totals: measure.Totals{Delivered: t.Delivered,
		Lost: t.Lost, Duplicates: t.Duplicates, OutOfOrder: t.OutOfOrder, TooLate: t.TooLate}}
	for _, k := range j.ByKind {
		m.ByKind = append(m.ByKind, MeasuredKind{Kind: k.Kind, QoS: k.QoS, Latency: percentilesOf(k.Latency),
			Totals: measure.Totals{Streams: k.Streams, Delivered: k.Delivered, Lost: k.Lost, Duplicates: k.Duplicates, OutOfOrder: k.OutOfOrder}})
		m.All.Totals.Streams += k.Streams
	}
	m.Scheduled, m.Late, m.Lag, m.Ack = p.Scheduled, p.Late, percentilesOf(p.Lag), percentilesOf(p.Ack)
	m.GeneratorLate, m.GeneratorLag = p.GeneratorLate, percentilesOf(p.GeneratorLag)
	m.Due, m.Sent, m.Shed, m.Behind, m.HeldBack, m.Waiting = p.Due, p.Sent, p.Shed, p.Behind, p.HeldBack, p.Waiting
	m.Window, m.Throughput = seconds(t.Window), t.Throughput
	if t.WindowStart != "" {
		m.WindowStart, _ = time.Parse(time.RFC3339Nano, t.WindowStart) // checked in checkRead
	}
	m.UnmeasuredOut, m.UnmeasuredIn, m.Forged, m.Retained = t.UnmeasuredSent, t.UnmeasuredRecvd, t.Forged, t.Retained
	m.Generator = Generator{CPU: seconds(g.CPUSeconds), Cores: g.Cores, Utilisation: g.Utilisation, GCCycles: g.GCCycles,
		GCPause: seconds(g.GCPauseSeconds), MaxInFlight: g.MaxInFlight, BrokerDropped: g.BrokerDropped, Bottleneck: g.Bottleneck,
		BottleneckWhy: g.Reasons, MaxRSS: g.MaxRSSBytes, GOMAXPROCS: g.GOMAXPROCS, GOGC: g.GOGC, MemoryLimit: g.MemoryLimitBytes,
		StartingStack: g.StartingStackBytes, WakeBatch: seconds(g.WakeBatchSeconds)}
	if len(m.Generator.BottleneckWhy) == 0 {
		m.Generator.BottleneckWhy = nil
	}
}

func (j *jsonReport) portable(s *Summary) {
	h := j.Histograms
	p := &s.Portable
	p.Lag, p.Ack, p.GeneratorLag = h.Lag, h.Ack, h.GeneratorLag
	for _, k := range h.Latency {
		p.Latency = append(p.Latency, KindHistogram(k))
	}
	if sh := j.Shard; sh != nil {
		s.Sharding = ShardInfo{Shard: Shard{Index: sh.Index, Count: sh.Count}, RunID: sh.RunID, StartLate: seconds(sh.StartLateSeconds)}
		s.Sharding.StartAt, _ = time.Parse(time.RFC3339Nano, sh.StartAt) // checked in checkRead
	}
	if j.Streams == nil {
		return
	}
	p.Streams = true
	for _, ps := range j.Streams.Published {
		p.Published = append(p.Published, PublishedStream(ps))
	}
	for _, r := range j.Streams.Received {
		p.Received = append(p.Received, ReceivedStream{Kind: r.Kind, QoS: r.QoS, Receiver: r.Receiver, ID: r.ID, Topic: r.Topic,
			StreamTally: measure.StreamTally{Key: measure.Key(0, r.ID), First: r.First, Max: r.Max, Delivered: r.Delivered,
				Duplicates: r.Duplicates, OutOfOrder: r.OutOfOrder, TooLate: r.TooLate, Lost: r.Lost, Restarts: r.Restarts}})
	}
}

// checkRead checks what summary could not: times, the shard, and the histograms' counts
// against the figures beside them.
func (s *Summary) checkRead(j *jsonReport) error {
	if t := j.Totals.WindowStart; t != "" {
		if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
			return fmt.Errorf("totals.throughput_window_start: %w", err)
		}
	}
	if sh := j.Shard; sh != nil {
		if sh.Count > 0 {
			if err := sh.shard().valid(); err != nil {
				return fmt.Errorf("shard: %w", err)
			}
		}
		if sh.StartAt != "" {
			if _, err := time.Parse(time.RFC3339Nano, sh.StartAt); err != nil {
				return fmt.Errorf("shard.start_at: %w", err)
			}
		}
	}
	for i, c := range j.Clocks {
		if _, err := ParseShard(c.Shard); err != nil {
			return fmt.Errorf("clocks[%d].shard: %w", i, err)
		}
	}
	for _, k := range s.Portable.Latency {
		if _, err := measure.MergePortable(k.Latency); err != nil {
			return fmt.Errorf("histograms.latency (%s, QoS %d): %w", k.Kind, k.QoS, err)
		}
	}
	for name, p := range map[string]measure.Portable{"lag": s.Portable.Lag, "ack": s.Portable.Ack, "generator_lag": s.Portable.GeneratorLag} {
		if _, err := measure.MergePortable(p); err != nil {
			return fmt.Errorf("histograms.%s: %w", name, err)
		}
	}
	var n int64
	for _, k := range s.Portable.Latency {
		n += k.Latency.Count
	}
	if n != j.Latency.Count {
		return fmt.Errorf("histograms.latency hold %d values, latency_seconds.count says %d", n, j.Latency.Count)
	}
	return nil
}

func (sh *jsonShard) shard() Shard { return Shard{Index: sh.Index, Count: sh.Count} }
