package pace_test

import (
	"fmt"
	"time"

	"github.com/fleetsim/fleetsim/sim/pace"
)

func ExampleDueBefore() {
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	// 100 messages a second, sent from start: by 2.5 s, messages 0 to 249 were due.
	n := pace.DueBefore(pace.Constant{Rate: 100}, start, start.Add(2500*time.Millisecond), 0)
	fmt.Println(n, "due")
	// Output: 250 due
}

// A sender asks Due when its next message is due, sleeps until then, and measures the
// message's latency from that time. The due times come from the schedule alone, so a sender
// that stalls finds its next messages already due and sends them at once.
func ExampleDue() {
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	schedule := pace.Constant{Rate: 4}
	for sent := uint64(0); sent < 5; sent++ {
		due, _ := pace.Due(schedule, start, sent)
		fmt.Printf("message %d due at +%v\n", sent, due.Sub(start))
	}
	// Output:
	// message 0 due at +0s
	// message 1 due at +250ms
	// message 2 due at +500ms
	// message 3 due at +750ms
	// message 4 due at +1s
}

// Phases joins a ramp and a steady rate into one schedule, which stops by itself once its
// last message is sent.
func ExamplePhases() {
	curve := pace.Phases([]pace.Phase{
		{Pacer: pace.Linear{Start: 0, End: 10, Over: 2 * time.Second}, Duration: 2 * time.Second},
		{Pacer: pace.Constant{Rate: 10}, Duration: time.Second},
	})
	fmt.Println(curve)
	fmt.Println(curve.Total(), "messages over", curve.Duration())
	// The ramp's rate grows by 5/s each second, so message k is due at √(k/2.5) s; the
	// steady phase sends the rest, 10 a second.
	for _, sent := range []uint64{0, 5, 10, 19, 20} {
		wait, stop := curve.Pace(0, sent)
		fmt.Printf("message %d: due at %v, stop %v\n", sent, wait, stop)
	}
	// Output:
	// phases[linear 0/s to 10/s over 2s for 2s, constant 10/s for 1s]
	// 20 messages over 3s
	// message 0: due at 0s, stop false
	// message 5: due at 1.414213562s, stop false
	// message 10: due at 2s, stop false
	// message 19: due at 2.9s, stop false
	// message 20: due at 0s, stop true
}
