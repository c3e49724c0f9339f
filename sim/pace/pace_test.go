package pace

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

type paceCase struct {
	elapsed time.Duration
	sent    uint64
	wait    time.Duration
	stop    bool
}

func checkPacer(t *testing.T, p Pacer, cases []paceCase) {
	t.Helper()
	for _, c := range cases {
		wait, stop := p.Pace(c.elapsed, c.sent)
		if wait != c.wait || stop != c.stop {
			t.Errorf("%v: Pace(%v, %d) = %v, %v; want %v, %v", p, c.elapsed, c.sent, wait, stop, c.wait, c.stop)
		}
	}
}

func TestConstantPace(t *testing.T) {
	ms := time.Millisecond
	checkPacer(t, Constant{Rate: 100}, []paceCase{
		{0, 0, 0, false},
		{0, 1, 10 * ms, false},
		{5 * ms, 1, 5 * ms, false},
		{10 * ms, 1, 0, false},
		{10 * ms, 2, 10 * ms, false},
		{time.Second, 100, 0, false},
		{time.Second, 50, -500 * ms, false}, // 50 behind: due half a second ago
		{time.Second, 150, 500 * ms, false}, // ahead: wait
		{time.Hour, 360_000, 0, false},
	})
	checkPacer(t, Constant{Rate: 3}, []paceCase{
		{0, 1, 333_333_333, false},
		{0, 2, 666_666_667, false},
		{0, 3, time.Second, false},
	})
	checkPacer(t, Constant{Rate: 0.5}, []paceCase{{0, 1, 2 * time.Second, false}})
	for _, c := range []Constant{{0}, {-1}} {
		checkPacer(t, c, []paceCase{{0, 0, 0, true}, {time.Second, 5, 0, true}})
	}
	checkPacer(t, Constant{Rate: 1e-12}, []paceCase{{0, 1 << 40, 0, true}}) // beyond any Duration
}

func TestLinearPace(t *testing.T) {
	ms := time.Millisecond
	s := time.Second
	// 0 → 100/s over 10s: N(t) = 5t², 500 messages in the ramp, then 100/s.
	checkPacer(t, Linear{Start: 0, End: 100, Over: 10 * s}, []paceCase{
		{0, 0, 0, false},
		{0, 5, s, false},
		{0, 20, 2 * s, false},
		{500 * ms, 5, 500 * ms, false},
		{3 * s, 20, -s, false},
		{0, 500, 10 * s, false},
		{0, 600, 11 * s, false},
		{10 * s, 501, 10 * ms, false},
	})
	// Flat ramp is a constant rate.
	checkPacer(t, Linear{Start: 10, End: 10, Over: s}, []paceCase{
		{0, 5, 500 * ms, false},
		{0, 10, s, false},
		{0, 25, 2500 * ms, false},
	})
	// 100 → 0/s over 10s: N(t) = 100t − 5t², 500 messages, then nothing.
	checkPacer(t, Linear{Start: 100, End: 0, Over: 10 * s}, []paceCase{
		{0, 95, s, false},
		{0, 500, 10 * s, false},
		{0, 501, 0, true},
	})
	// 10 → 20/s over 1s: N(t) = 10t + 5t²; N(1) = 15, then 20/s.
	checkPacer(t, Linear{Start: 10, End: 20, Over: s}, []paceCase{
		{0, 15, s, false},
		{0, 35, 2 * s, false},
	})
	for _, l := range []Linear{{Start: -1, End: 10, Over: s}, {Start: 1, End: -1, Over: s}, {Start: 1, End: 2}, {}} {
		checkPacer(t, l, []paceCase{{0, 0, 0, true}, {0, 3, 0, true}})
	}
}

func TestPhasesPace(t *testing.T) {
	ms := time.Millisecond
	s := time.Second
	curve := Phases([]Phase{
		{Constant{Rate: 10}, s},                   // messages 0..9 at 0, 0.1 .. 0.9s
		{Constant{Rate: 0}, s},                    // a pause
		{Constant{Rate: 100}, 0},                  // skipped: no duration
		{Linear{Start: 0, End: 100, Over: s}, s},  // N(t) = 50t²: messages 10..59 at 2 + √(k/50)
		{Constant{Rate: 100}, 500 * ms},           // messages 60..109 at 3, 3.01 .. 3.49s
		{Linear{Start: 100, End: 0, Over: s}, s},  // ramp down: 50 messages, 110..159 from 3.5s
		{Constant{Rate: 1000}, 10 * ms},           // 160..169 from 4.5s
		{Linear{Start: 1, End: 1, Over: s}, 1500}, // 1.5 µs: only message 0 (170)
	})
	if curve.Total() != 171 || curve.Duration() != 4510*ms+1500 {
		t.Fatalf("Total, Duration = %d, %v", curve.Total(), curve.Duration())
	}
	checkPacer(t, curve, []paceCase{
		{0, 0, 0, false},
		{0, 9, 900 * ms, false},
		{500 * ms, 9, 400 * ms, false},
		{0, 10, 2 * s, false},            // the pause is skipped over: next due at 2s
		{1500 * ms, 10, 500 * ms, false}, // elapsed is re-based at each phase
		{0, 12, 2200 * ms, false},        // √(2/50) = 0.2
		{0, 59, 2_989_949_494, false},    // 2 + √(49/50)
		{0, 60, 3 * s, false},
		{4 * s, 60, -s, false}, // a stalled sender is told how late it is
		{0, 109, 3490 * ms, false},
		{0, 110, 3500 * ms, false},
		{0, 160, 4500 * ms, false},
		{0, 169, 4509 * ms, false},
		{0, 170, 4510 * ms, false},
		{0, 171, 0, true},
		{time.Hour, 1000, 0, true},
	})
	if c := Phases(nil); c.Total() != 0 {
		t.Errorf("empty curve has %d messages", c.Total())
	} else if _, stop := c.Pace(0, 0); !stop {
		t.Error("empty curve does not stop")
	}
}

// TestPacersMonotonic checks that due times never go backwards and Due agrees with Pace.
func TestPacersMonotonic(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	start := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for range 50 {
		var ps []Phase
		for range 1 + r.IntN(4) {
			d := time.Duration(1+r.IntN(2000)) * time.Millisecond
			switch r.IntN(2) {
			case 0:
				ps = append(ps, Phase{Constant{Rate: r.Float64() * 500}, d})
			default:
				ps = append(ps, Phase{Linear{Start: r.Float64() * 500, End: r.Float64() * 500, Over: d}, d})
			}
		}
		curve := Phases(ps)
		var prev time.Duration
		for k := range curve.Total() {
			wait, stop := curve.Pace(0, k)
			if stop || wait < prev || wait >= curve.Duration() {
				t.Fatalf("%v: message %d due %v (stop %v) after %v, curve ends %v", ps, k, wait, stop, prev, curve.Duration())
			}
			if due, ok := Due(curve, start, k); !ok || !due.Equal(start.Add(wait)) {
				t.Fatalf("Due = %v, %v", due, ok)
			}
			prev = wait
		}
		if _, ok := Due(curve, start, curve.Total()); ok {
			t.Fatal("Due past the end reports ok")
		}
	}
}

// TestDueLoopCountsLateSends runs a sender loop under fake time: it sleeps until each
// message is due, and stalls once for a second. The stalled messages go out late, are
// counted, and carry their intended times; the schedule does not slip.
func TestDueLoopCountsLateSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		curve := Phases([]Phase{{Constant{Rate: 100}, 3 * time.Second}})
		start := time.Now()
		var sent, late uint64
		var worst time.Duration
		var last time.Time
		for {
			due, ok := Due(curve, start, sent)
			if !ok {
				break
			}
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			if lag := time.Since(due); lag > 0 { // latency would be measured from due
				late++
				worst = max(worst, lag)
			}
			last = time.Now()
			sent++
			if sent == 101 { // message 100 went out at 1s; then the sender stalls
				time.Sleep(time.Second)
			}
		}
		// Messages 101..199 were due during the stall (1.01s .. 1.99s) and went out at
		// 2s; message 200 was due at exactly 2s.
		if sent != 300 || late != 99 {
			t.Errorf("sent %d, late %d; want 300, 99", sent, late)
		}
		if worst != 990*time.Millisecond {
			t.Errorf("worst lag %v, want 990ms", worst)
		}
		if got := last.Sub(start); got != 2990*time.Millisecond {
			t.Errorf("last send at %v, want 2.99s (no slip)", got)
		}
	})
}

func TestPacerStrings(t *testing.T) {
	c := Phases([]Phase{{Constant{Rate: 10}, time.Second}, {Linear{Start: 0, End: 5, Over: time.Second}, 2 * time.Second}})
	if want := "phases[constant 10/s for 1s, linear 0/s to 5/s over 1s for 2s]"; c.String() != want {
		t.Errorf("String() = %q, want %q", c.String(), want)
	}
}

// TestDueBefore checks DueBefore against counting the due times one by one, from every kind
// of starting guess: too low, right, too high, and far off.
func TestDueBefore(t *testing.T) {
	start := time.Unix(1_000, 0)
	pacers := []Pacer{
		Constant{Rate: 100},
		Constant{Rate: 0.5},
		Linear{Start: 0, End: 50, Over: 2 * time.Second},
		Phases([]Phase{{Pacer: Constant{Rate: 20}, Duration: time.Second}, {Pacer: Constant{Rate: 0}, Duration: time.Second},
			{Pacer: Linear{Start: 10, End: 0, Over: time.Second}, Duration: time.Second}}),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range pacers {
		for range 200 {
			at := start.Add(time.Duration(rng.Int64N(int64(5*time.Second))) - time.Second)
			var want uint64
			for {
				due, ok := Due(p, start, want)
				if !ok || !due.Before(at) {
					break
				}
				want++
			}
			for _, from := range []uint64{0, want / 2, want, want + 1, want * 3, 1 << 40} {
				if got := DueBefore(p, start, at, from); got != want {
					t.Fatalf("%v: DueBefore(start%+v, from %d) = %d; want %d", p, at.Sub(start), from, got, want)
				}
			}
		}
	}
}
