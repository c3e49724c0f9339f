package runner

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// TestGeneratorLimit checks who gets the blame for what a run did not do, from the
// measurement alone (Generator.finish).
func TestGeneratorLimit(t *testing.T) {
	cases := []struct {
		name          string
		m             Measured
		brokerTrouble bool
		want          string // a reason that must be given; "" for none
	}{
		{"on schedule", Measured{Due: 1000, Sent: 1000, Scheduled: 1000}, false, ""},
		{"a few shed at the stop", Measured{Due: 1000, Sent: 991, Shed: 9, Behind: 9, Scheduled: 991}, false, ""},
		{"behind", Measured{Due: 1000, Sent: 500, Shed: 500, Behind: 480, Scheduled: 500}, false,
			"sent 500 of 1,000 scheduled (50% shed: the generator could not keep up)"},
		{"waiting on a healthy broker is one publish in flight", Measured{Due: 1000, Sent: 500, Shed: 500, Waiting: 490, Scheduled: 500,
			Ack: measure.Percentiles{Count: 500, P50: 2 * time.Millisecond}}, false,
			"a load device has one publish in flight, and acknowledgements took 2ms (p50)"},
		{"waiting on a broker in trouble is the broker's", Measured{Due: 1000, Sent: 500, Shed: 500, Waiting: 490, Scheduled: 500}, true, ""},
		{"held back by links is the scenario's", Measured{Due: 1000, Sent: 500, Shed: 500, HeldBack: 490, Scheduled: 500}, false, ""},
		{"late for its own reasons", Measured{Scheduled: 1000, GeneratorLate: 20, GeneratorLag: measure.Percentiles{Count: 1000, P99: 15 * time.Millisecond}}, false,
			"20 of 1,000 scheduled sends left more than 10ms late"},
		{"late waiting for links only", Measured{Scheduled: 1000, Late: 900, Lag: measure.Percentiles{Count: 1000, P99: 3 * time.Second}}, false, ""},
		{"one stall in a small run", Measured{Scheduled: 20, GeneratorLate: 2, GeneratorLag: measure.Percentiles{Count: 20, P99: 40 * time.Millisecond}}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := Generator{Cores: 2}
			g.limit(&c.m, c.brokerTrouble)
			if c.want == "" {
				if g.Bottleneck {
					t.Errorf("the generator was blamed: %v", g.BottleneckWhy)
				}
				return
			}
			if !g.Bottleneck || !strings.Contains(strings.Join(g.BottleneckWhy, "\n"), c.want) {
				t.Errorf("reasons %q, want one with %q", g.BottleneckWhy, c.want)
			}
		})
	}
	g := Generator{Cores: 2, BrokerDropped: 7}
	g.limit(&Measured{}, false)
	busy := Generator{Cores: 2, Utilisation: 0.95}
	busy.limit(&Measured{Due: 100, Sent: 50, Shed: 50, Waiting: 40}, true)
	if len(busy.BottleneckWhy) != 2 || !strings.Contains(busy.BottleneckWhy[0], "50% shed") || !strings.Contains(busy.BottleneckWhy[1], "95% of the 2 core(s)") {
		t.Errorf("a busy generator: reasons %q, want the shed sends (its own, though their devices waited) and then the CPU", busy.BottleneckWhy)
	}
	if !g.Bottleneck || !strings.Contains(g.BottleneckWhy[0], "embedded broker, inside fleetsim, dropped 7") {
		t.Errorf("embedded broker drops: reasons %q", g.BottleneckWhy)
	}
}

// TestVerdictOrder checks that a run gets its worst verdict, with the error Run returns and
// the headline that opens the summary.
func TestVerdictOrder(t *testing.T) {
	crossed := []ThresholdResult{{Threshold: "loss==0", OK: false, Detail: "loss = 3, not == 0"}}
	limited := Measured{Due: 100, Sent: 40, Generator: Generator{Bottleneck: true, BottleneckWhy: []string{"sent 40 of 100 scheduled (60% shed: the generator could not keep up)"}}}
	cases := []struct {
		name     string
		s        Summary
		allow    bool
		verdict  Verdict
		err      error
		headline string
	}{
		{"passed", Summary{Measured: Measured{Due: 100, Sent: 100}}, false, Passed, nil, "fleetsim: passed: sent 100 of 100 scheduled"},
		{"thresholds", Summary{Thresholds: crossed}, false, ThresholdsCrossed, ErrThresholds, "fleetsim: thresholds-crossed: loss = 3, not == 0"},
		{"generator before thresholds", Summary{Thresholds: crossed, Measured: limited}, false, GeneratorLimited, ErrGeneratorLimit,
			"fleetsim: generator-limited: sent 40 of 100 scheduled (60% shed: the generator could not keep up)"},
		{"generator allowed", Summary{Thresholds: crossed, Measured: limited}, true, ThresholdsCrossed, ErrThresholds, "fleetsim: thresholds-crossed"},
		{"generator allowed, no threshold", Summary{Measured: limited}, true, Passed, nil, "fleetsim: passed (the generator was the limit, allowed): sent 40 of 100"},
		{"a device failed first", Summary{Errors: []string{"home 1 bulb-1: boom"}, Measured: limited}, false, DeviceFailed, nil, "fleetsim: device-failed: home 1 bulb-1: boom"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.s.judge(c.allow)
			if c.s.Verdict != c.verdict || (c.err != nil && !errors.Is(err, c.err)) || (c.verdict == Passed) != (err == nil) {
				t.Errorf("verdict %v, err %v; want %v, %v", c.s.Verdict, err, c.verdict, c.err)
			}
			if h := c.s.Headline(); !strings.HasPrefix(h, c.headline) {
				t.Errorf("headline %q, want it to start %q", h, c.headline)
			}
			if c.s.Passed() != (c.verdict == Passed) {
				t.Errorf("Passed() = %v with verdict %v", c.s.Passed(), c.s.Verdict)
			}
		})
	}
}
