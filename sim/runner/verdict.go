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
