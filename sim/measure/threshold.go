package measure

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Metric names a threshold may test, with what Values puts under them. Latencies are in
// seconds in the values map and written with a unit in a threshold ("latency_p99<50ms");
// the rest are plain numbers.
const (
	MetricLatencyP50  = "latency_p50"  // seconds
	MetricLatencyP90  = "latency_p90"  // seconds
	MetricLatencyP99  = "latency_p99"  // seconds
	MetricLatencyP999 = "latency_p999" // seconds
	MetricLatencyMax  = "latency_max"  // seconds
	MetricLatencyMean = "latency_mean" // seconds
	MetricLoss        = "loss"         // messages lost (Totals.Lost)
	MetricLossRatio   = "loss_ratio"   // Totals.LossRatio, 0..1
	MetricDuplicates  = "duplicates"   // Totals.Duplicates
	MetricOutOfOrder  = "out_of_order" // Totals.OutOfOrder
	MetricTooLate     = "too_late"     // Totals.TooLate
	MetricThroughput  = "throughput"   // delivered messages per second
	MetricLateSends   = "late_sends"   // sends that went out after their due time (set by the engine)
	MetricShed        = "shed"         // sends the schedules called for and never made (set by the engine)
	MetricSentRatio   = "sent_ratio"   // sends made / sends due, 0..1; 1 when nothing was due (set by the engine)
)

type metricKind uint8

const (
	kindDuration metricKind = iota
	kindCount
	kindRatio
	kindRate
)

var knownMetrics = map[string]metricKind{
	MetricLatencyP50: kindDuration, MetricLatencyP90: kindDuration, MetricLatencyP99: kindDuration,
	MetricLatencyP999: kindDuration, MetricLatencyMax: kindDuration, MetricLatencyMean: kindDuration,
	MetricLoss: kindCount, MetricLossRatio: kindRatio, MetricDuplicates: kindCount,
	MetricOutOfOrder: kindCount, MetricTooLate: kindCount, MetricThroughput: kindRate,
	MetricLateSends: kindCount, MetricShed: kindCount, MetricSentRatio: kindRatio,
}

// KnownMetrics lists the metric names Parse accepts, sorted.
func KnownMetrics() []string {
	names := make([]string, 0, len(knownMetrics))
	for m := range knownMetrics {
		names = append(names, m)
	}
	slices.Sort(names)
	return names
}

// Comparison operators, longest first so that "<=" is not read as "<".
var ops = []string{"<=", ">=", "==", "!=", "<", ">"}

// Threshold is one pass/fail condition on a run's result, k6 style: Metric Op Value, such
// as latency_p99 < 0.05 (50 ms; latencies are held in seconds).
type Threshold struct {
	Metric string
	Op     string // one of < <= > >= == !=
	Value  float64
}

// Parse reads a threshold such as "latency_p99<50ms", "loss==0", "loss_ratio < 0.001" or
// "throughput>=1000" (spaces around the operator are allowed). Latency metrics need a
// duration with a unit ("50ms", "1.5s"; a bare 0 is fine); the others take a plain
// non-negative number, and loss_ratio one from 0 to 1. Errors quote the whole threshold
// and name the bad part.
func Parse(s string) (Threshold, error) {
	fail := func(format string, args ...any) (Threshold, error) {
		return Threshold{}, fmt.Errorf("threshold %q: %s", s, fmt.Sprintf(format, args...))
	}
	src := strings.TrimSpace(s)
	if src == "" {
		return fail("empty; want metric, operator and value, like latency_p99<50ms")
	}
	i := strings.IndexAny(src, "<>=!")
	if i < 0 {
		return fail("no operator; want one of %s between metric and value, like latency_p99<50ms", strings.Join(ops, " "))
	}
	metric := strings.TrimSpace(src[:i])
	rest := src[i:]
	j := 0
	for j < len(rest) && strings.IndexByte("<>=!", rest[j]) >= 0 {
		j++
	}
	op := rest[:j]
	value := strings.TrimSpace(rest[j:])
	if metric == "" {
		return fail("no metric before %q; known metrics: %s", op, strings.Join(KnownMetrics(), ", "))
	}
	kind, ok := knownMetrics[metric]
	if !ok {
		return fail("unknown metric %q; known metrics: %s", metric, strings.Join(KnownMetrics(), ", "))
	}
	if !slices.Contains(ops, op) {
		return fail("unknown operator %q; want one of %s", op, strings.Join(ops, " "))
	}
	if value == "" {
		return fail("no value after %q", op)
	}
	t := Threshold{Metric: metric, Op: op}
	if kind == kindDuration {
		d, err := time.ParseDuration(value)
		switch {
		case err != nil && isNumber(value):
			return fail("value %q for %s needs a unit, like %sms", value, metric, value)
		case err != nil:
			return fail("value %q for %s is not a duration, like 50ms", value, metric)
		case d < 0:
			return fail("value %q for %s is negative", value, metric)
		}
		t.Value = d.Seconds()
		return t, nil
	}
	v, err := strconv.ParseFloat(value, 64)
	switch {
	case err != nil:
		return fail("value %q for %s is not a number", value, metric)
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fail("value %q for %s is not a finite number", value, metric)
	case v < 0:
		return fail("value %q for %s is negative", value, metric)
	case kind == kindRatio && v > 1:
		return fail("value %q for %s is a ratio, from 0 to 1", value, metric)
	}
	t.Value = v
	return t, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// ParseAll parses every threshold and reports every bad one at once.
func ParseAll(ss []string) ([]Threshold, error) {
	var ts []Threshold
	var errs []error
	for _, s := range ss {
		t, err := Parse(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ts = append(ts, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ts, nil
}

// String writes t back in Parse's syntax, like "latency_p99<50ms".
func (t Threshold) String() string {
	return t.Metric + t.Op + t.format(t.Value)
}

func (t Threshold) format(v float64) string {
	if knownMetrics[t.Metric] == kindDuration && !math.IsNaN(v) && !math.IsInf(v, 0) {
		return time.Duration(math.Round(v * 1e9)).String()
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Check tests t against values (metric name → value, latencies in seconds, as Values
// makes them). A metric absent from values fails. detail reads like
// "latency_p99 = 62ms, not < 50ms" or "loss = 0, == 0: ok".
func (t Threshold) Check(values map[string]float64) (ok bool, detail string) {
	v, found := values[t.Metric]
	if !found {
		return false, t.Metric + ": no value measured"
	}
	switch t.Op {
	case "<":
		ok = v < t.Value
	case "<=":
		ok = v <= t.Value
	case ">":
		ok = v > t.Value
	case ">=":
		ok = v >= t.Value
	case "==":
		ok = v == t.Value
	case "!=":
		ok = v != t.Value
	default:
		return false, fmt.Sprintf("%s: unknown operator %q", t.Metric, t.Op)
	}
	if ok {
		return true, fmt.Sprintf("%s = %s, %s %s: ok", t.Metric, t.format(v), t.Op, t.format(t.Value))
	}
	return false, fmt.Sprintf("%s = %s, not %s %s", t.Metric, t.format(v), t.Op, t.format(t.Value))
}

// Values gathers a run's results under the metric names thresholds use. Throughput is
// delivered messages over window, the time in which they flowed (not the run's duration,
// which counts connecting and the wait for the last messages). Latencies are left out when
// nothing was recorded, loss_ratio when nothing was expected and throughput when window is
// not positive, so thresholds on them fail rather than pass on nothing. Pass the Totals
// from Tracker.Finish. late_sends, shed and sent_ratio are the engine's to add.
func Values(p Percentiles, t Totals, window time.Duration) map[string]float64 {
	v := map[string]float64{
		MetricLoss:       float64(t.Lost),
		MetricDuplicates: float64(t.Duplicates),
		MetricOutOfOrder: float64(t.OutOfOrder),
		MetricTooLate:    float64(t.TooLate),
	}
	if p.Count > 0 {
		v[MetricLatencyP50] = p.P50.Seconds()
		v[MetricLatencyP90] = p.P90.Seconds()
		v[MetricLatencyP99] = p.P99.Seconds()
		v[MetricLatencyP999] = p.P999.Seconds()
		v[MetricLatencyMax] = p.Max.Seconds()
		v[MetricLatencyMean] = p.Mean.Seconds()
	}
	if t.Expected() > 0 {
		v[MetricLossRatio] = t.LossRatio()
	}
	if window > 0 {
		v[MetricThroughput] = float64(t.Delivered) / window.Seconds()
	}
	return v
}
