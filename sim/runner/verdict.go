package runner

import (
	"fmt"
	"strings"
	"time"
)

// Verdict is a run's outcome (DESIGN.md §9). The report, the summary's first line and, in
// cmd, the exit code all follow it.
type Verdict string

// The verdicts, from the worst: a device failed; the generator, not the broker, was the
// limit; a threshold was crossed; passed.
const (
	DeviceFailed      Verdict = "device-failed"
	GeneratorLimited  Verdict = "generator-limited"
	ThresholdsCrossed Verdict = "thresholds-crossed"
	Passed            Verdict = "passed"
)

// judge settles the run's verdict and its reasons, and returns the error Run returns for
// it. A run whose generator was the limit did not measure the broker: that comes before
// its thresholds, which say nothing about the broker then, unless allowGenerator.
func (s *Summary) judge(allowGenerator bool) error {
	g := &s.Measured.Generator
	var crossed []string
	for _, t := range s.Thresholds {
		if !t.OK {
			crossed = append(crossed, t.Detail)
		}
	}
	switch {
	case len(s.Errors) > 0:
		s.Verdict, s.Reasons = DeviceFailed, s.Errors
		return fmt.Errorf("%d device(s) stopped with errors; first: %s", len(s.Errors), s.Errors[0])
	case g.Bottleneck && !allowGenerator:
		s.Verdict, s.Reasons = GeneratorLimited, g.BottleneckWhy
		return fmt.Errorf("%w: %s", ErrGeneratorLimit, g.BottleneckWhy[0])
	case len(crossed) > 0:
		s.Verdict, s.Reasons = ThresholdsCrossed, crossed
		return fmt.Errorf("%w: %d of %d", ErrThresholds, len(crossed), len(s.Thresholds))
	}
	s.Verdict, s.Reasons = Passed, nil
	if g.Bottleneck {
		s.Reasons = append([]string{"the generator was the limit, which this run was told to allow:"}, g.BottleneckWhy...)
	}
	return nil
}

// Passed reports whether the verdict is Passed.
func (s *Summary) Passed() bool { return s.Verdict == Passed }

// Headline is the summary's first line: the verdict and what it rests on, such as
// "generator-limited: sent 516,065 of 900,032 scheduled (43% shed: the generator could not
// keep up)".
func (s *Summary) Headline() string {
	m := &s.Measured
	var b strings.Builder
	b.WriteString("fleetsim: " + string(s.Verdict))
	switch {
	case s.Verdict == Passed && s.Measured.Generator.Bottleneck:
		b.WriteString(" (the generator was the limit, allowed): " + s.Measured.Generator.BottleneckWhy[0])
	case s.Verdict != Passed && len(s.Reasons) > 0:
		b.WriteString(": " + s.Reasons[0])
		if n := len(s.Reasons) - 1; n > 0 {
			fmt.Fprintf(&b, " (and %d more below)", n)
		}
	case m.Due > 0:
		b.WriteString(": " + sentText(m))
		var held []string
		if m.HeldBack > 0 {
			held = append(held, thousands(m.HeldBack)+" held back by their shaped links")
		}
		if m.Waiting > 0 {
			held = append(held, thousands(m.Waiting)+" not sent while their devices waited for the broker or the network")
		}
		if len(held) > 0 {
			b.WriteString(" (" + strings.Join(held, ", ") + ")")
		}
	}
	if s.Verdict == Passed && m.Throughput > 0 {
		fmt.Fprintf(&b, "; %s delivered, %s/s over %v", thousands(m.All.Totals.Delivered), perSecond(m.Throughput),
			m.Window.Round(time.Millisecond))
	}
	return b.String()
}

// Generator-bound when any of these is crossed. The ratios need at least minEvidence sends
// behind them: one stall of a busy machine in a small run is not a generator at its limit.
const (
	maxUtilisation = 0.9  // of the cores fleetsim may use
	maxLateRatio   = 0.01 // of scheduled sends
	minEvidence    = 10   // sends late or shed
)

// finish probes what the generator used over a run of elapsed (probe) and judges from that
// and the measurement whether it was the limit (limit).
//
// brokerTrouble says whether the broker or the network failed the run somewhere (a publish
// failed, a connection dropped). Without it, sends not made while their devices waited for a
// publish to complete are the generator's too: the broker answered every publish, and a
// load device has one publish in flight, so it cannot send faster than the round trip.
func (g *Generator) finish(elapsed time.Duration, m *Measured, brokerTrouble bool) {
	g.probe(elapsed)
	g.limit(m, brokerTrouble)
}

// limit judges whether the generator, not the broker, was the limit, and gives the
// reasons (Bottleneck, BottleneckWhy). It moves the sends not made while their devices
// waited for a publish into Behind when they were the generator's doing (see finish).
func (g *Generator) limit(m *Measured, brokerTrouble bool) {
	why := func(format string, args ...any) {
		g.BottleneckWhy = append(g.BottleneckWhy, fmt.Sprintf(format, args...))
	}
	busy := g.Utilisation > maxUtilisation
	oneInFlight := ""
	if busy || !brokerTrouble {
		// A generator out of CPU is slow to take its own acknowledgements too: sends not
		// made while their devices waited for one are its doing as well.
		if !busy && m.Waiting > 0 && m.Ack.Count > 0 {
			oneInFlight = fmt.Sprintf("; a load device has one publish in flight, and acknowledgements took %v (p50)", m.Ack.P50.Round(time.Microsecond))
		}
		m.Behind, m.Waiting = m.Behind+m.Waiting, 0
	}
	// The first reason heads the summary: what the run failed to do comes before why.
	if m.Behind >= minEvidence && float64(m.Behind) > maxLateRatio*float64(m.Due) {
		why("%s (%.0f%% shed: the generator could not keep up)%s", sentText(m), 100*float64(m.Shed)/float64(m.Due), oneInFlight)
	}
	if l := m.GeneratorLag; m.GeneratorLate >= minEvidence && l.P99 > LateAfter {
		why("schedule lag p99 %v is above %v%s", l.P99.Round(time.Microsecond), LateAfter, lagHint(m))
	}
	if m.GeneratorLate >= minEvidence && float64(m.GeneratorLate) > maxLateRatio*float64(m.Scheduled) {
		why("%s of %s scheduled sends left more than %v late%s", thousands(uint64(m.GeneratorLate)), thousands(uint64(m.Scheduled)), LateAfter, lagHint(m))
	}
	if busy {
		why("fleetsim used %.0f%% of the %d core(s) it may use", 100*g.Utilisation, g.Cores)
	}
	if g.InboxDropped > 0 {
		why("fleetsim's devices dropped %d received messages they could not take in time: that loss is on the generator's side of the wire", g.InboxDropped)
	}
	if g.BrokerDropped > 0 {
		why("the embedded broker, inside fleetsim, dropped %d messages for subscribers that did not take them in time: that loss is on the generator's side of the wire", g.BrokerDropped)
	}
	g.Bottleneck = len(g.BottleneckWhy) > 0
}

// lagHint says what the generator's lag leaves out, and what may be behind it.
func lagHint(m *Measured) string {
	hint := ""
	if m.Lag.P99 > m.GeneratorLag.P99 {
		hint = " (not counting the time devices waited for their previous publish to complete)"
	}
	return hint
}
