package measure_test

import (
	"fmt"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// A threshold is written as on the command line (--threshold) or in a scenario's
// thresholds list; latencies take a unit and are held in seconds.
func ExampleParse() {
	t, err := measure.Parse("latency_p99 < 50ms")
	if err != nil {
		panic(err)
	}
	fmt.Println(t, "tests", t.Metric, t.Op, t.Value)

	_, err = measure.Parse("latency_p99<50") // no unit
	fmt.Println(err)
	// Output:
	// latency_p99<50ms tests latency_p99 < 0.05
	// threshold "latency_p99<50": value "50" for latency_p99 needs a unit, like 50ms
}

// Check tests a threshold against a run's values, named as Values names them; a metric
// the run did not measure fails rather than passes on nothing.
func ExampleThreshold_Check() {
	values := map[string]float64{
		measure.MetricLatencyP99: 0.062, // seconds
		measure.MetricLoss:       0,
	}
	for _, s := range []string{"latency_p99<50ms", "loss==0", "throughput>=1000"} {
		t, err := measure.Parse(s)
		if err != nil {
			panic(err)
		}
		ok, detail := t.Check(values)
		fmt.Println(ok, detail)
	}
	// Output:
	// false latency_p99 = 62ms, not < 50ms
	// true loss = 0, == 0: ok
	// false throughput: no value measured
}
