// Package pace holds open-model send schedules (DESIGN.md §4): a Pacer says when each
// message of a schedule is due, from the schedule alone, so a sender that falls behind
// catches up instead of slipping, and its lateness can be measured from when each message
// was due. Constant, Linear and Phases build the schedules a scenario asks for; Due and
// DueBefore read them.
//
// Like vegeta's pacers, these are pure functions with no clock inside: tables of (elapsed,
// sent) test them. The package uses the standard library only, so a device that keeps a
// schedule depends on nothing else.
package pace

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Pacer is an open-model send schedule: a pure function with no clock inside, so a table
// of (elapsed, sent) → (wait, stop) tests it (after vegeta's Pacer).
//
// Pace is asked, elapsed after the start with sent messages already sent, when message
// number sent (counting from 0) is due. It answers how long after elapsed that is; a
// negative wait means it was due -wait ago, so the sender is behind: send at once, and
// measure the message's latency from when it was due, not from when it went out
// (coordinated omission). stop means there is no such message: the schedule has ended.
//
// The due time of a message depends only on sent, never on elapsed, so a stalled sender
// catches up with a burst of late sends instead of slipping the schedule; Due gives that
// time directly.
type Pacer interface {
	Pace(elapsed time.Duration, sent uint64) (wait time.Duration, stop bool)
}

// Due is the intended send time of message number sent (from 0) of a schedule started at
// start; false when the schedule ends before it.
func Due(p Pacer, start time.Time, sent uint64) (time.Time, bool) {
	wait, stop := p.Pace(0, sent)
	if stop {
		return time.Time{}, false
	}
	return start.Add(wait), true
}

// maxDue is the latest due time a pacer reports; anything later stops the schedule.
const maxDue = time.Duration(math.MaxInt64 / 2)

// seconds converts a due time in seconds to a Duration; stop when it is out of range.
func seconds(s float64) (time.Duration, bool) {
	if !(s >= 0) || s*1e9 >= float64(maxDue) { // also catches NaN
		return 0, true
	}
	return time.Duration(math.Round(s * 1e9)), false
}

// Constant sends Rate messages per second, message i due at i/Rate. A Rate of 0 or less
// sends nothing (stop at once). It never stops by itself; bound it with Phases or the run's
// duration.
type Constant struct {
	Rate float64 // messages per second
}

// Pace implements Pacer.
func (c Constant) Pace(elapsed time.Duration, sent uint64) (time.Duration, bool) {
	if !(c.Rate > 0) {
		return 0, true
	}
	due, stop := seconds(float64(sent) / c.Rate)
	return due - elapsed, stop
}

// String is like "constant 100/s".
func (c Constant) String() string { return fmt.Sprintf("constant %g/s", c.Rate) }

// Linear ramps the rate from Start to End messages per second over Over, then holds End.
// Message i is due when the ramp's cumulative count reaches i, so message 0 is due at once.
// A negative rate, or an Over of 0 or less, sends nothing; a schedule whose rate reaches 0
// stops when its last message is sent.
type Linear struct {
	Start, End float64 // messages per second
	Over       time.Duration
}

// Pace implements Pacer.
func (l Linear) Pace(elapsed time.Duration, sent uint64) (time.Duration, bool) {
	if !(l.Start >= 0) || !(l.End >= 0) || l.Over <= 0 {
		return 0, true
	}
	if sent == 0 {
		return -elapsed, false
	}
	k := float64(sent)
	over := l.Over.Seconds()
	slope := (l.End - l.Start) / over      // rate change per second
	ramped := (l.Start + l.End) / 2 * over // messages due within the ramp
	var t float64
	if k <= ramped {
		// Solve slope/2·t² + Start·t = k for the smallest t ≥ 0, in the form that keeps
		// precision when slope is near 0: t = 2k / (Start + √(Start² + 2·slope·k)).
		disc := l.Start*l.Start + 2*slope*k
		t = 2 * k / (l.Start + math.Sqrt(max(disc, 0)))
		t = min(t, over) // rounding at the ramp's end
	} else {
		if !(l.End > 0) {
			return 0, true
		}
		t = over + (k-ramped)/l.End
	}
	due, stop := seconds(t)
	return due - elapsed, stop
}

// String is like "linear 10/s to 100/s over 1m0s".
func (l Linear) String() string {
	return fmt.Sprintf("linear %g/s to %g/s over %v", l.Start, l.End, l.Over)
}

// Phase is one part of a rate curve: Pacer for Duration.
type Phase struct {
	Pacer    Pacer
	Duration time.Duration
}

// Phases joins phases into one rate curve, which stops once the last phase's messages are
// sent (Curve.Duration says when the last phase ends). Each phase's pacer
// sees elapsed and sent re-based to the phase's own start: it sends the messages its pacer
// makes due before its Duration ends, and the next phase starts Duration later whatever
// happened. Phases of 0 or negative Duration are skipped.
//
// Phases counts each phase's messages when called (a binary search of its pacer), so the
// result answers Pace in time proportional to the number of phases.
func Phases(ps []Phase) Curve {
	p := Curve{}
	var at time.Duration
	var first uint64
	for _, ph := range ps {
		if ph.Duration <= 0 || ph.Pacer == nil {
			continue
		}
		n := countBefore(ph.Pacer, ph.Duration)
		p.parts = append(p.parts, phasePart{pacer: ph.Pacer, start: at, dur: ph.Duration, first: first, n: n})
		at += ph.Duration
		first += n
	}
	p.total, p.end = first, at
	return p
}

// Curve is a rate curve made by Phases.
type Curve struct {
	parts []phasePart
	total uint64
	end   time.Duration
}

// Total is how many messages the curve sends.
func (p Curve) Total() uint64 { return p.total }

// String lists the phases, like "phases[constant 10/s for 1s, linear 0/s to 5/s over 1s for 1s]".
func (p Curve) String() string {
	var b strings.Builder
	b.WriteString("phases[")
	for i, ph := range p.parts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%v for %v", ph.pacer, ph.dur)
	}
	b.WriteString("]")
	return b.String()
}

// Duration is when the curve's last phase ends.
func (p Curve) Duration() time.Duration { return p.end }

type phasePart struct {
	pacer Pacer
	start time.Duration // when the phase starts
	dur   time.Duration
	first uint64 // number of the phase's first message in the whole curve
	n     uint64 // messages in the phase
}

// Pace implements Pacer.
func (p Curve) Pace(elapsed time.Duration, sent uint64) (time.Duration, bool) {
	for _, ph := range p.parts {
		if sent < ph.first+ph.n {
			return ph.pacer.Pace(elapsed-ph.start, sent-ph.first)
		}
	}
	return 0, true
}

// DueBefore is how many messages of schedule p, started at start, are due before t: the
// sends a sender keeping the schedule would have made by then. from is a count already
// known to be due, such as the sends made so far, where the search starts: for a sender on
// its schedule the answer costs a call or two of Pace. A from that is too high is searched
// down from.
func DueBefore(p Pacer, start, t time.Time, from uint64) uint64 {
	return countFrom(p, t.Sub(start), from)
}

// countBefore is how many messages p makes due before d: the smallest k whose message is
// due at or after d, or never.
func countBefore(p Pacer, d time.Duration) uint64 { return countFrom(p, d, 0) }

// countFrom is countBefore searched from a guess: it gallops up or down from k, then
// bisects.
func countFrom(p Pacer, d time.Duration, k uint64) uint64 {
	before := func(k uint64) bool {
		wait, stop := p.Pace(0, k)
		return !stop && wait < d
	}
	var lo, hi uint64 // message lo is due before d, message hi is not
	if before(k) {
		// Grow hi until message hi is not due before d.
		lo, hi = k, k+1
		for step := uint64(1); before(hi); step *= 2 {
			lo = hi
			if hi > math.MaxUint64/2 {
				return math.MaxUint64
			}
			hi += step
		}
	} else {
		if k == 0 || !before(0) {
			return 0
		}
		// Shrink lo until message lo is due before d.
		hi, lo = k, k-1
		for step := uint64(1); !before(lo); step *= 2 {
			hi = lo
			lo -= min(step, lo)
		}
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if before(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}
