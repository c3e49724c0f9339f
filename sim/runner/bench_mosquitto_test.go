package runner_test

// End-to-end benchmarks against a real mosquitto on loopback (issue 3, "Performance bars").
// They start their own broker (sim/testbroker), run fleetsim's load and sink kinds through
// runner.Run, and report with b.ReportMetric:
//
//   - BenchmarkThroughputQoS0, BenchmarkThroughputQoS1: the highest rate delivered end to end
//     with zero loss that fleetsim sustains (msgs/s), found by a short search, and the
//     fleetsim process's CPU-seconds per million delivered messages at that rate and at a
//     fixed reference rate (cpu-s/Mmsg, cpu-s/Mmsg@ref).
//   - BenchmarkPahoFloorQoS0, BenchmarkPahoFloorQoS1 (bench_floor_test.go): the same search
//     and figures for plain paho clients in the same shape, fleetsim's floor.
//   - BenchmarkOverloadQoS0, BenchmarkOverloadQoS1: the same search, then twice the rate
//     found held, to check that delivered throughput does not collapse past the limit.
//   - BenchmarkConnections: per-device connections, memory per connection and connect rate.
//
// Each runs its search once, however many iterations the framework asks for (b.Loop ends
// after one: an iteration takes far longer than -benchtime). The default sizes finish in a
// few minutes in all (`make bench`); -fleetsim.full runs the full sizes (10 s steps, a finer
// search, connections up to the open-file limit), about 20 minutes:
//
//	go test -run '^$' -bench 'Throughput|Floor|Connections' -benchtime 1x ./sim/runner
//	go test -run '^$' -bench 'Throughput|Floor|Connections' -benchtime 1x -timeout 1h ./sim/runner -args -fleetsim.full
//
// Every step is logged (b.Logf: benchmarks always print their log). To profile the
// per-message path, hold one rate instead of searching (-fleetsim.rate), and change the
// shape with -fleetsim.pubs and -fleetsim.conns:
//
//	go test -run '^$' -bench 'ThroughputQoS0$' -benchtime 1x -cpuprofile cpu.out ./sim/runner -args -fleetsim.rate 60000 -fleetsim.full
//	go tool pprof -top runner.test cpu.out  # go test leaves the binary beside the profile

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetsim/fleetsim/devices"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/pace"
	"github.com/fleetsim/fleetsim/sim/runner"
	"github.com/fleetsim/fleetsim/sim/scenario"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

var (
	benchFull  = flag.Bool("fleetsim.full", false, "end-to-end benchmarks: run the full sizes (tens of minutes) instead of the quick ones")
	benchRate  = flag.Float64("fleetsim.rate", 0, "throughput benchmarks: hold this one rate (msgs/s) instead of searching, for profiling")
	benchPubs  = flag.Int("fleetsim.pubs", 0, "throughput benchmarks: this many publishers instead of the shape's")
	benchConns = flag.Int("fleetsim.conns", -1, "throughput benchmarks: this many connections (0: one per device) instead of the shape's")
)

// withFlags is sh with the publishers and connections the flags ask for.
func (sh shape) withFlags() shape {
	if *benchPubs > 0 {
		sh.pubs = *benchPubs
	}
	if *benchConns >= 0 {
		sh.conns = *benchConns
	}
	return sh
}

// benchSizes are the knobs that trade a benchmark's time for its precision.
type benchSizes struct {
	step   time.Duration // how long each rate of a search is held
	bisect int           // halvings of the interval between the last rate that held and the first that did not
	conns  int           // per-device connections; 0: as many as the open-file limit allows
}

func sizes() benchSizes {
	if *benchFull {
		return benchSizes{step: 10 * time.Second, bisect: 5, conns: 0}
	}
	return benchSizes{step: 3 * time.Second, bisect: 3, conns: 2000}
}

// shape is how a throughput benchmark's traffic flows: pubs publishers, each on an
// open-model schedule of rate/pubs, over conns connections (0: one per publisher), into one
// subscriber that takes everything. With a pool the subscriber shares connection 1 with
// some publishers, as runner's pool mode puts device i on connection i % conns.
type shape struct {
	qos     byte
	pubs    int
	conns   int
	payload int // bytes, header included
	start   float64
	ref     float64 // the reference rate, msgs/s, at which CPU per message is compared
	max     float64 // the search's ceiling
	client  string  // the MQTT client: paho or lean
}

// over is sh with its connections on client.
func (sh shape) over(client string) shape {
	sh.client = client
	return sh
}

var (
	shapeQoS0 = shape{qos: 0, pubs: 4, conns: 0, payload: 64, start: 10_000, ref: 60_000, max: 400_000, client: scenario.ClientPaho}
	shapeQoS1 = shape{qos: 1, pubs: 64, conns: 0, payload: 64, start: 5_000, ref: 30_000, max: 400_000, client: scenario.ClientPaho}
)

// pause is how long publishers wait at the start of a step, so that the subscriber is
// subscribed before the first message goes out.
const pause = 300 * time.Millisecond

// Sustained means, for a step: every message sent arrived once (lost 0, nothing missing),
// the schedule was kept (no more than maxLate of the sends left over 10 ms late), no
// backlog grew (p99 end-to-end latency under maxP99), and the subscriber took everything
// it was given (no inbox drops).
const (
	maxLate = 0.01
	maxP99  = 100 * time.Millisecond
)

// stepResult is what one rate held for one step did.
type stepResult struct {
	rate                     float64 // offered, msgs/s
	expected, delivered      uint64
	lost, dups, reordered    uint64
	scheduled, late          int64
	dropped                  int64
	p50, p99, lagP99, ackP99 time.Duration
	cpu, brokerCPU           time.Duration // the generator's process; mosquitto
	elapsed                  time.Duration
	gc                       uint32
	reads, writes            int64   // the generator's read and write system calls
	inWindow                 float64 // msgs/s the sink received while the publishers sent (0: not sampled)
	win                      window  // the same span: what it cost
	err                      error
}

// cpuPerMsg is the generator's CPU a message the sink received while the publishers sent,
// in µs: the cost of a message, without the run's fixed costs (connecting, the drain).
func (r stepResult) cpuPerMsg() float64 {
	return r.win.cpu.Seconds() / max(r.inWindow*r.win.span.Seconds(), 1) * 1e6
}

// brokerBusy is the share of a core mosquitto used while the publishers sent.
func (r stepResult) brokerBusy() float64 {
	return r.win.broker.Seconds() / max(r.win.span.Seconds(), 1e-9)
}

// verdict says whether the step was sustained, and if not why.
func (r stepResult) verdict() (bool, string) {
	var why []string
	if r.err != nil {
		why = append(why, r.err.Error())
	}
	if r.lost > 0 || r.delivered < r.expected {
		why = append(why, fmt.Sprintf("%d of %d delivered, %d lost", r.delivered, r.expected, r.lost))
	}
	if float64(r.late) > maxLate*float64(max(r.scheduled, 1)) {
		why = append(why, fmt.Sprintf("%d of %d sends late", r.late, r.scheduled))
	}
	if r.p99 > maxP99 {
		why = append(why, fmt.Sprintf("latency p99 %v", r.p99.Round(time.Millisecond)))
	}
	if r.dropped > 0 {
		why = append(why, fmt.Sprintf("%d inbox drops", r.dropped))
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// cpuPerM is CPU-seconds per million delivered messages.
func cpuPerM(cpu time.Duration, delivered uint64) float64 {
	if delivered == 0 {
		return 0
	}
	return cpu.Seconds() / float64(delivered) * 1e6
}

func (r stepResult) String() string {
	ok, why := r.verdict()
	verdict := "ok"
	if !ok {
		verdict = "FAIL: " + why
	}
	perMsg := func(n int64) float64 { return float64(n) / float64(max(r.delivered, 1)) }
	return fmt.Sprintf("%8.0f msg/s: %.0f/s received while sending, %d delivered, p50 %v p99 %v, lag p99 %v, ack p99 %v, cpu %.2fs (%.2f cpu-s/Mmsg; %.1f µs a message while sending), broker %.2f cpu-s/Mmsg (%.0f%% of a core while sending), %d GC, %.2f reads and %.2f writes per message: %s",
		r.rate, r.inWindow, r.delivered, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.lagP99.Round(time.Microsecond),
		r.ackP99.Round(time.Microsecond), r.cpu.Seconds(), cpuPerM(r.cpu, r.delivered), r.cpuPerMsg(), cpuPerM(r.brokerCPU, r.delivered),
		100*r.brokerBusy(), r.gc, perMsg(r.reads), perMsg(r.writes), verdict)
}

// search finds the highest rate that step sustains: it doubles from sh.start until a rate
// fails (or sh.max), then halves the interval between the last that held and the first
// that did not, bisect times. It returns the best step, or the zero result if none held.
//
// A rate fails only if it fails twice: on a machine shared with other work, a stall of
// 20 ms from elsewhere is enough to make 1% of a short step's sends late.
func search(b *testing.B, sh shape, bisect int, step func(rate float64) stepResult) stepResult {
	b.Helper()
	try := func(rate float64) (stepResult, bool) {
		for attempt := 1; ; attempt++ {
			r := step(rate)
			ok, _ := r.verdict()
			b.Logf("%v", r)
			if ok || attempt == 2 {
				return r, ok
			}
		}
	}
	var best stepResult
	lo, hi := 0.0, 0.0
	for rate := sh.start; rate <= sh.max; rate *= 2 {
		r, ok := try(rate)
		if !ok {
			hi = rate
			break
		}
		best, lo = r, rate
	}
	if hi == 0 {
		return best // held up to the ceiling
	}
	for range bisect {
		mid := math.Round((lo + hi) / 2)
		if lo == 0 {
			mid = math.Round(hi / 2)
		}
		if r, ok := try(mid); ok {
			best, lo = r, mid
		} else {
			hi = mid
		}
	}
	return best
}

// benchBroker starts mosquitto for a benchmark, with room for a fast subscriber's backlog
// and many QoS 1 messages in flight to it.
func benchBroker(b *testing.B) *testbroker.Mosquitto {
	b.Helper()
	return testbroker.StartMosquitto(b, testbroker.Config{MaxQueuedMessages: 1_000_000, MaxInflightMessages: 1000})
}

// brokerCPU returns mosquitto's CPU time so far (0 if unknown).
func brokerCPU(m *testbroker.Mosquitto) time.Duration {
	u, err := m.Usage()
	if err != nil {
		return 0
	}
	return u.CPU
}

// loadScenario is sh at rate for d: a sink on "bench/#" and sh.pubs load devices, each
// publishing sh.payload bytes at rate/sh.pubs on its own topic after a short pause.
func loadScenario(sh shape, rate float64, d time.Duration) (*scenario.Scenario, uint64) {
	per := rate / float64(sh.pubs)
	phases := []devices.LoadPhase{{For: pause, Rate: 0}, {For: d, Rate: per}}
	total := pace.Phases([]pace.Phase{{Pacer: pace.Constant{Rate: per}, Duration: d}}).Total()
	conns := scenario.Connections{Mode: scenario.PerDevice}
	if sh.conns > 0 {
		conns = scenario.Connections{Mode: scenario.Pool, PoolSize: sh.conns}
	}
	return &scenario.Scenario{
		File: "bench", Name: "bench", Duration: pause + d + 200*time.Millisecond, Seed: 1, Homes: 1,
		TopicPrefix: "bench", Connections: conns,
		Groups: []scenario.Group{
			{Kind: "sink", Name: "sink", Count: 1, QoS: sh.qos, MaxRate: 1, Topic: "bench/sink",
				Params: &devices.SinkParams{Subscribe: []string{"bench/#"}}},
			{Kind: "load", Name: "load", Count: sh.pubs, QoS: sh.qos, MaxRate: scenario.MaxRateLimit, Topic: "bench/{id}",
				Params: &devices.LoadParams{PayloadBytes: sh.payload, Phases: phases}},
		},
	}, total * uint64(sh.pubs)
}

// fleetsimStep runs fleetsim at rate for d against m.
func fleetsimStep(b *testing.B, m *testbroker.Mosquitto, sh shape, rate float64, d time.Duration) stepResult {
	b.Helper()
	s, expected := loadScenario(sh, rate, d)
	met := metrics.New(prometheus.NewRegistry(), s.Name)
	broker0 := brokerCPU(m)
	reads0, writes0 := syscalls()
	ctx, cancel := context.WithCancel(context.Background())
	sampled := make(chan window, 1)
	go func() { sampled <- sendWindow(ctx, met, m, sh, d) }()
	sum, err := runner.Run(ctx, runner.Config{Scenario: s, Kinds: devices.Kinds(), Metrics: met,
		Grace: 3 * time.Second, Conn: mqttconn.Options{Broker: m.URL(), ConnectTimeout: 10 * time.Second}, Client: sh.client})
	cancel()
	win := <-sampled
	r := stepResult{rate: rate, expected: expected, err: err, brokerCPU: brokerCPU(m) - broker0, inWindow: win.rate, win: win}
	reads, writes := syscalls()
	r.reads, r.writes = reads-reads0, writes-writes0
	if sum == nil {
		return r
	}
	for _, k := range sum.Measured.ByKind {
		if k.Kind == "sink" && k.QoS == int(sh.qos) {
			r.delivered, r.lost = k.Totals.Delivered, k.Totals.Lost
			r.dups, r.reordered = k.Totals.Duplicates, k.Totals.OutOfOrder
			r.p50, r.p99 = k.Latency.P50, k.Latency.P99
		}
	}
	ms := sum.Measured
	r.scheduled, r.late, r.lagP99, r.ackP99 = ms.Scheduled, ms.Late, ms.Lag.P99, ms.Ack.P99
	r.dropped = ms.Generator.InboxDropped
	r.cpu, r.gc, r.elapsed = ms.Generator.CPU, ms.Generator.GCCycles, sum.Elapsed
	return r
}

// window is what happened from the end of a step's pause to the end of its sending: the
// rate (msgs/s) at which the sink received, and the CPU the generator's process and
// mosquitto used meanwhile.
type window struct {
	rate        float64
	span        time.Duration
	cpu, broker time.Duration
}

// sendWindow samples the window of a run of loadScenario(sh, rate, d) against m, reckoned
// from when the run started its devices. What arrives after (a backlog drained in the
// grace period) does not count: it is the throughput delivered under the offered load.
// The zero window if ctx ends first.
func sendWindow(ctx context.Context, met *metrics.Metrics, m *testbroker.Mosquitto, sh shape, d time.Duration) window {
	started := met.Devices.WithLabelValues("load")
	received := met.Received.WithLabelValues("sink", strconv.Itoa(int(sh.qos)))
	for testutil.ToFloat64(started) < float64(sh.pubs) {
		select {
		case <-ctx.Done():
			return window{}
		case <-time.After(time.Millisecond):
		}
	}
	t0 := time.Now()
	type sample struct {
		n           float64
		at          time.Time
		cpu, broker time.Duration
	}
	take := func(at time.Time) (sample, bool) {
		select {
		case <-ctx.Done():
			return sample{}, false
		case <-time.After(time.Until(at)):
		}
		return sample{n: testutil.ToFloat64(received), at: time.Now(), cpu: processCPU(), broker: brokerCPU(m)}, true
	}
	from, ok := take(t0.Add(pause))
	if !ok {
		return window{}
	}
	to, ok := take(t0.Add(pause + d))
	if !ok {
		return window{}
	}
	span := to.at.Sub(from.at)
	return window{rate: (to.n - from.n) / span.Seconds(), span: span, cpu: to.cpu - from.cpu, broker: to.broker - from.broker}
}

func BenchmarkThroughputQoS0(b *testing.B) { benchThroughput(b, shapeQoS0) }
func BenchmarkThroughputQoS1(b *testing.B) { benchThroughput(b, shapeQoS1) }

// BenchmarkThroughputLeanQoS0 and BenchmarkThroughputLeanQoS1 are fleetsim with its
// connections on the lean client (sim/lean).
func BenchmarkThroughputLeanQoS0(b *testing.B) {
	benchThroughput(b, shapeQoS0.over(scenario.ClientLean))
}
func BenchmarkThroughputLeanQoS1(b *testing.B) {
	benchThroughput(b, shapeQoS1.over(scenario.ClientLean))
}

func benchThroughput(b *testing.B, sh shape) {
	sh, sz := sh.withFlags(), sizes()
	m := benchBroker(b)
	for b.Loop() {
		if *benchRate > 0 {
			holdRate(b, fleetsimStep(b, m, sh, *benchRate, sz.step))
			continue
		}
		best := search(b, sh, sz.bisect, func(rate float64) stepResult { return fleetsimStep(b, m, sh, rate, sz.step) })
		ref := fleetsimStep(b, m, sh, sh.ref, sz.step)
		b.Logf("reference: %v", ref)
		if best.delivered == 0 {
			b.Fatalf("no rate from %.0f msg/s up was sustained", sh.start)
		}
		if ok, why := ref.verdict(); !ok {
			b.Errorf("the reference rate %.0f msg/s was not sustained: %s", sh.ref, why)
		}
		reportThroughput(b, best, ref)
	}
}

// BenchmarkOverloadQoS0 and BenchmarkOverloadQoS1 hold twice the highest sustainable rate
// (found by the same search as the throughput benchmarks) and check that fleetsim does not
// collapse past its limit: its sink must still receive, while the publishers send, at least
// minOverloadRatio of that highest rate. They report the highest rate (msgs/s), what the
// sink received per second at twice it (msgs/s@2x), their ratio, and the share of the
// messages sent at twice it that were lost (lost-%@2x). With -fleetsim.rate the search is
// skipped and that rate is taken for the highest.
func BenchmarkOverloadQoS0(b *testing.B) { benchOverload(b, shapeQoS0) }
func BenchmarkOverloadQoS1(b *testing.B) { benchOverload(b, shapeQoS1) }

// minOverloadRatio is the least share of the highest sustainable rate that must still be
// delivered when twice that rate is offered (issue 15).
const minOverloadRatio = 0.9

func benchOverload(b *testing.B, sh shape) {
	sh, sz := sh.withFlags(), sizes()
	m := benchBroker(b)
	for b.Loop() {
		best := *benchRate
		if best == 0 {
			r := search(b, sh, sz.bisect, func(rate float64) stepResult { return fleetsimStep(b, m, sh, rate, sz.step) })
			if r.delivered == 0 {
				b.Fatalf("no rate from %.0f msg/s up was sustained", sh.start)
			}
			best = r.rate
		}
		over := fleetsimStep(b, m, sh, 2*best, sz.step)
		b.Logf("twice the highest rate: %v", over)
		if over.err != nil && !errors.Is(over.err, runner.ErrGeneratorLimit) { // overloaded is the point
			b.Fatalf("at %.0f msg/s: %v", over.rate, over.err)
		}
		ratio := over.inWindow / best
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(best, "msgs/s")
		b.ReportMetric(over.inWindow, "msgs/s@2x")
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(100*float64(over.lost)/float64(max(over.delivered+over.lost, 1)), "lost-%@2x")
		if ratio < minOverloadRatio {
			b.Errorf("at twice the highest sustainable rate (%.0f msg/s offered) the sink received %.0f msg/s, %.2f of %.0f: want at least %.2f",
				over.rate, over.inWindow, ratio, best, minOverloadRatio)
		}
	}
}

// holdRate reports one step at a fixed rate (-fleetsim.rate).
func holdRate(b *testing.B, r stepResult) {
	b.Logf("%v", r)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(r.rate, "msgs/s")
	b.ReportMetric(cpuPerM(r.cpu, r.delivered), "cpu-s/Mmsg")
	b.ReportMetric(cpuPerM(r.brokerCPU, r.delivered), "broker-cpu-s/Mmsg")
	if ok, why := r.verdict(); !ok {
		b.Errorf("%.0f msg/s not sustained: %s", r.rate, why)
	}
}

// reportThroughput reports a search's best step and the reference step.
func reportThroughput(b *testing.B, best, ref stepResult) {
	b.ReportMetric(0, "ns/op") // one search, not a per-operation time
	b.ReportMetric(best.rate, "msgs/s")
	b.ReportMetric(cpuPerM(best.cpu, best.delivered), "cpu-s/Mmsg")
	b.ReportMetric(ref.rate, "ref-msgs/s")
	b.ReportMetric(cpuPerM(ref.cpu, ref.delivered), "cpu-s/Mmsg@ref")
	b.ReportMetric(cpuPerM(ref.brokerCPU, ref.delivered), "broker-cpu-s/Mmsg@ref")
	b.ReportMetric(float64(best.p99.Microseconds()), "p99-µs")
	b.ReportMetric(100*best.brokerBusy(), "broker-%core")
}

// BenchmarkPacingLeanQoS1 is what pacing costs (issue 14): fleetsim on the lean client
// holds the highest zero-loss rate (found by the same search as the throughput benchmarks,
// or -fleetsim.rate), then half and a tenth of it, and reports the generator's CPU a message
// at each, while the publishers send (µs/msg@100%, @50%, @10%), and the ratio of the last
// two to the first. At lower rates fewer sends fall due together, so each costs more: its
// own wake-up, hand-over and system calls; the bar is twice the cost at the top.
func BenchmarkPacingLeanQoS1(b *testing.B) {
	sh, sz := shapeQoS1.over(scenario.ClientLean).withFlags(), sizes()
	m := benchBroker(b)
	for b.Loop() {
		top := *benchRate
		if top == 0 {
			best := search(b, sh, sz.bisect, func(rate float64) stepResult { return fleetsimStep(b, m, sh, rate, sz.step) })
			if best.delivered == 0 {
				b.Fatalf("no rate from %.0f msg/s up was sustained", sh.start)
			}
			top = best.rate
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(top, "msgs/s")
		var atTop float64
		for _, pct := range []int{100, 50, 10} {
			r := fleetsimStep(b, m, sh, top*float64(pct)/100, sz.step)
			b.Logf("%d%%: %v", pct, r)
			if ok, why := r.verdict(); !ok {
				b.Errorf("%d%% of %.0f msg/s was not sustained: %s", pct, top, why)
			}
			cost := r.cpuPerMsg()
			b.ReportMetric(cost, fmt.Sprintf("µs/msg@%d%%", pct))
			if pct == 100 {
				atTop = cost
				b.ReportMetric(100*r.brokerBusy(), "broker-%core")
				continue
			}
			b.ReportMetric(cost/max(atTop, 1e-9), fmt.Sprintf("ratio@%d%%", pct))
		}
	}
}

// BenchmarkConnections opens per-device connections, as many as sizes().conns (or, with
// -fleetsim.full, as many as the open-file limit leaves room for: each costs fleetsim one
// descriptor, and mosquitto one of its own, under the same limit). Every device but one is
// a load device sending one small message every 5 s; the last is a sink that takes them
// all. It reports the connect rate, the memory each connection costs fleetsim (Go heap and
// stacks after a GC, and resident memory) and mosquitto, and checks that nothing was lost.
//
// Two connect rates: conns/s is n over the time from runner.Run's call to the run's start
// (Summary.Started), so it includes the run's set-up before and after dialing; dial-conns/s
// is n over the time from the first connection seen up to the last (the connections gauge,
// polled every 2 ms), dialing alone. broker-cpu% is mosquitto's CPU over that second
// span, in percent of one core: mosquitto uses one, so near 100 it is the limit.
// cpu-µs/conn is fleetsim's CPU time over that span (the kernel's part of connecting
// included) a connection.
func BenchmarkConnections(b *testing.B) {
	n := sizes().conns
	if n == 0 {
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatal(err)
		}
		n = int(min(lim.Cur, 1<<20)) - 100 // the test binary's and mosquitto's own files
	}
	m := testbroker.StartMosquitto(b, testbroker.Config{})
	for b.Loop() {
		benchConnections(b, m, n, scenario.ClientPaho)
	}
}

// BenchmarkConnectionsLean is BenchmarkConnections on the lean client.
func BenchmarkConnectionsLean(b *testing.B) {
	n := sizes().conns
	if n == 0 {
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatal(err)
		}
		n = int(min(lim.Cur, 1<<20)) - 100
	}
	m := testbroker.StartMosquitto(b, testbroker.Config{})
	for b.Loop() {
		benchConnections(b, m, n, scenario.ClientLean)
	}
}

func benchConnections(b *testing.B, m *testbroker.Mosquitto, n int, client string) {
	d := 5 * time.Second
	if *benchFull {
		d = 20 * time.Second
	}
	s := &scenario.Scenario{
		File: "bench", Name: "bench", Duration: d, Seed: 1, Homes: 1, TopicPrefix: "bench",
		Connections: scenario.Connections{Mode: scenario.PerDevice},
		Groups: []scenario.Group{
			{Kind: "sink", Name: "sink", Count: 1, MaxRate: 1, Topic: "bench/sink", Params: &devices.SinkParams{Subscribe: []string{"bench/#"}}},
			{Kind: "load", Name: "load", Count: n - 1, MaxRate: 1, Topic: "bench/{id}", Params: &devices.LoadParams{PayloadBytes: 64, Rate: 0.2}},
		},
	}
	met := metrics.New(prometheus.NewRegistry(), s.Name)
	goMem0, rss0 := goMemory(), rss()
	broker0, _ := m.Usage()

	// Memory is sampled while every connection is up and every device runs; the dialing
	// alone is timed, and mosquitto's CPU taken, from the first connection up to the last.
	type sample struct {
		goMem, rss, broker int64
		dialing            time.Duration
		brokerCPU, ownCPU  time.Duration // mosquitto's and this process's, while dialing
	}
	sampled := make(chan sample, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer close(sampled)
		running := func() float64 {
			return testutil.ToFloat64(met.Devices.WithLabelValues("load")) + testutil.ToFloat64(met.Devices.WithLabelValues("sink"))
		}
		var smp sample
		var first time.Time
		var firstCPU, firstOwn time.Duration
		for up := 0.0; up < float64(n); up = testutil.ToFloat64(met.Connections) {
			if up > 0 && first.IsZero() {
				first, firstCPU, firstOwn = time.Now(), brokerCPU(m), ownCPU()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
		smp.dialing, smp.brokerCPU, smp.ownCPU = time.Since(first), brokerCPU(m)-firstCPU, ownCPU()-firstOwn
		for running() < float64(n) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		time.Sleep(time.Second) // every device past its start
		u, _ := m.Usage()
		smp.goMem, smp.rss, smp.broker = goMemory(), rss(), u.RSS
		sampled <- smp
	}()
	t0 := time.Now()
	sum, err := runner.Run(ctx, runner.Config{Scenario: s, Kinds: devices.Kinds(), Metrics: met, Grace: 5 * time.Second,
		Conn: mqttconn.Options{Broker: m.URL(), ConnectTimeout: 30 * time.Second}, Client: client})
	cancel()
	if err != nil {
		b.Fatalf("%d connections: %v", n, err)
	}
	mem, ok := <-sampled
	if !ok {
		b.Fatalf("never saw %d connections and devices up at once", n)
	}
	connect := sum.Started.Sub(t0)
	var delivered, lost uint64
	for _, k := range sum.Measured.ByKind {
		delivered += k.Totals.Delivered
		lost += k.Totals.Lost
	}
	brokerShare := 100 * mem.brokerCPU.Seconds() / mem.dialing.Seconds()
	b.Logf("%d connections in %v (dialing alone %v, mosquitto %.0f%% of a core, fleetsim %.0f%%); delivered %d, lost %d; memory per connection: Go %d B, RSS %d B, mosquitto %d B",
		n, connect.Round(time.Millisecond), mem.dialing.Round(time.Millisecond), brokerShare,
		100*mem.ownCPU.Seconds()/mem.dialing.Seconds(), delivered, lost,
		(mem.goMem-goMem0)/int64(n), (mem.rss-rss0)/int64(n), (mem.broker-broker0.RSS)/int64(n))
	if lost > 0 || delivered == 0 {
		b.Errorf("delivered %d, lost %d: want everything through", delivered, lost)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n), "conns")
	b.ReportMetric(float64(n)/connect.Seconds(), "conns/s")
	b.ReportMetric(float64(n)/mem.dialing.Seconds(), "dial-conns/s")
	b.ReportMetric(brokerShare, "broker-cpu%")
	b.ReportMetric(float64(mem.ownCPU.Microseconds())/float64(n), "cpu-µs/conn")
	b.ReportMetric(float64(mem.goMem-goMem0)/float64(n), "B/conn")
	b.ReportMetric(float64(mem.rss-rss0)/float64(n), "rss-B/conn")
	b.ReportMetric(float64(mem.broker-broker0.RSS)/float64(n), "broker-B/conn")
}

// syscalls returns how many read and write system calls this process has made (Linux,
// /proc/self/io; 0 elsewhere). Connection setup is in the count too, a few per connection.
func syscalls() (reads, writes int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch name {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// ownCPU is this process's CPU time so far, user and system (0 if unknown).
func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// goMemory is the Go heap in use plus goroutine stacks, after a collection.
func goMemory() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc + ms.StackInuse)
}

// rss is this process's resident memory (Linux; 0 elsewhere), from /proc/self/statm.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res int64
	if _, err := fmt.Sscan(string(b), &size, &res); err != nil {
		return 0
	}
	return res * int64(os.Getpagesize())
}
