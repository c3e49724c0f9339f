package measure

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Threshold
		str  string
	}{
		{"latency_p99<50ms", Threshold{MetricLatencyP99, "<", 0.05}, "latency_p99<50ms"},
		{"latency_p50<=10ms", Threshold{MetricLatencyP50, "<=", 0.01}, "latency_p50<=10ms"},
		{" latency_max < 1.5s ", Threshold{MetricLatencyMax, "<", 1.5}, "latency_max<1.5s"},
		{"latency_p999<250us", Threshold{MetricLatencyP999, "<", 0.00025}, "latency_p999<250µs"},
		{"latency_mean<0", Threshold{MetricLatencyMean, "<", 0}, "latency_mean<0s"},
		{"loss==0", Threshold{MetricLoss, "==", 0}, "loss==0"},
		{"loss_ratio<0.001", Threshold{MetricLossRatio, "<", 0.001}, "loss_ratio<0.001"},
		{"loss_ratio <= 1", Threshold{MetricLossRatio, "<=", 1}, "loss_ratio<=1"},
		{"duplicates==0", Threshold{MetricDuplicates, "==", 0}, "duplicates==0"},
		{"throughput>=1000", Threshold{MetricThroughput, ">=", 1000}, "throughput>=1000"},
		{"throughput>1e3", Threshold{MetricThroughput, ">", 1000}, "throughput>1000"},
		{"out_of_order!=5", Threshold{MetricOutOfOrder, "!=", 5}, "out_of_order!=5"},
		{"late_sends==0", Threshold{MetricLateSends, "==", 0}, "late_sends==0"},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if got.String() != tc.str {
			t.Errorf("String() = %q, want %q", got.String(), tc.str)
		}
		if again, err := Parse(got.String()); err != nil || again != got {
			t.Errorf("Parse(String()) = %+v, %v", again, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // all must appear in the error
	}{
		{"", []string{"empty"}},
		{"   ", []string{"empty"}},
		{"latency_p99 50ms", []string{`"latency_p99 50ms"`, "no operator", "<="}},
		{"<50ms", []string{"no metric", "known metrics: duplicates", "latency_p99", "throughput"}},
		{"latency_p95<50ms", []string{`unknown metric "latency_p95"`, "known metrics:", "latency_p99"}},
		{"p(99)<50ms", []string{`unknown metric "p(99)"`}},
		{"loss=0", []string{`unknown operator "="`, "=="}},
		{"loss=<0", []string{`unknown operator "=<"`}},
		{"loss<>0", []string{`unknown operator "<>"`}},
		{"loss==", []string{`no value after "=="`}},
		{"latency_p99<50", []string{`value "50"`, "needs a unit, like 50ms"}},
		{"latency_p99<fast", []string{`value "fast"`, "not a duration"}},
		{"latency_p99<-5ms", []string{"negative"}},
		{"loss<5ms", []string{`value "5ms" for loss is not a number`}},
		{"loss<-1", []string{"negative"}},
		{"throughput>NaN", []string{"not a finite number"}},
		{"throughput>inf", []string{"not a finite number"}},
		{"loss_ratio<2", []string{"ratio, from 0 to 1"}},
	} {
		_, err := Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", tc.in)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%q) = %q; want it to mention %q", tc.in, err, w)
			}
		}
	}
}

func TestParseAll(t *testing.T) {
	ts, err := ParseAll([]string{"loss==0", "latency_p99<50ms"})
	if err != nil || len(ts) != 2 {
		t.Fatalf("got %v, %v", ts, err)
	}
	ts, err = ParseAll([]string{"loss==0", "lat<1", "loss_ratio<7"})
	if err == nil || ts != nil {
		t.Fatalf("got %v, %v; want an error", ts, err)
	}
	for _, w := range []string{`"lat<1"`, `"loss_ratio<7"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not report %s", err, w)
		}
	}
}

func TestCheck(t *testing.T) {
	values := map[string]float64{
		MetricLatencyP99:  0.062,
		MetricLatencyP50:  0.01,
		MetricLoss:        0,
		MetricLossRatio:   0.0005,
		MetricDuplicates:  3,
		MetricThroughput:  1000,
		MetricLatencyMean: 0.0123456789,
	}
	for _, tc := range []struct {
		th     string
		ok     bool
		detail string
	}{
		{"latency_p99<50ms", false, "latency_p99 = 62ms, not < 50ms"},
		{"latency_p99<100ms", true, "latency_p99 = 62ms, < 100ms: ok"},
		{"latency_p50<=10ms", true, "latency_p50 = 10ms, <= 10ms: ok"},
		{"latency_p50<10ms", false, "latency_p50 = 10ms, not < 10ms"},
		{"latency_mean<20ms", true, "latency_mean = 12.345679ms, < 20ms: ok"},
		{"loss==0", true, "loss = 0, == 0: ok"},
		{"loss_ratio<0.001", true, "loss_ratio = 0.0005, < 0.001: ok"},
		{"duplicates==0", false, "duplicates = 3, not == 0"},
		{"duplicates!=0", true, "duplicates = 3, != 0: ok"},
		{"throughput>=1000", true, "throughput = 1000, >= 1000: ok"},
		{"throughput>1000", false, "throughput = 1000, not > 1000"},
		{"latency_max<1s", false, "latency_max: no value measured"},
	} {
		th, err := Parse(tc.th)
		if err != nil {
			t.Fatal(err)
		}
		ok, detail := th.Check(values)
		if ok != tc.ok || detail != tc.detail {
			t.Errorf("%s: got %v %q; want %v %q", tc.th, ok, detail, tc.ok, tc.detail)
		}
	}
	if ok, _ := (Threshold{Metric: MetricLoss, Op: "~", Value: 0}).Check(values); ok {
		t.Error("a bad operator passed")
	}
}

// TestValuesEndToEnd runs results from a Tracker and a Recorder through thresholds.
func TestValuesEndToEnd(t *testing.T) {
	tr := NewTracker()
	rec := NewRecorder()
	for q := uint64(1); q <= 1000; q++ {
		if q == 500 {
			continue // lost
		}
		tr.Observe(Key(1, 1), q)
		rec.Record(time.Duration(q) * 10 * time.Microsecond) // 10µs .. 10ms
	}
	tr.Observe(Key(1, 1), 7) // a duplicate
	v := Values(rec.Snapshot(), tr.Finish(), time.Second)
	for _, c := range []struct {
		th string
		ok bool
	}{
		{"loss==1", true},
		{"loss_ratio<=0.001", true},
		{"duplicates==1", true},
		{"throughput>=999", true},
		{"throughput>999", false},
		{"latency_p99<10ms", true},
		{"latency_p50<5ms", false},
		{"latency_max<=10ms", true},
		{"late_sends==0", false}, // the engine's to set
	} {
		th, err := Parse(c.th)
		if err != nil {
			t.Fatal(err)
		}
		if ok, detail := th.Check(v); ok != c.ok {
			t.Errorf("%s: %v (%s), want %v", c.th, ok, detail, c.ok)
		}
	}
	empty := Values(Percentiles{}, Totals{}, 0)
	for _, m := range []string{MetricLatencyP99, MetricLossRatio, MetricThroughput} {
		if _, ok := empty[m]; ok {
			t.Errorf("%s present with nothing measured", m)
		}
	}
}
