package runner

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// Measured is the end-to-end accounting of a run: what the receivers got of what was
// published, how late, and whether the generator kept up.
type Measured struct {
	ByKind []MeasuredKind // per receiving kind and QoS, sorted; only classes that saw something
	All    MeasuredKind   // every receiver together (Kind "all", QoS -1)

	Scheduled int64               // sends made on a schedule (PublishAt)
	Late      int64               // of those, sent more than LateAfter after their due time
	Lag       measure.Percentiles // due → sent, for scheduled sends
	Ack       measure.Percentiles // QoS 1 and 2: publish → acknowledgement
	// The part of Lag that is the generator's (CPU, scheduling, its queues): all of it but
	// the time a device on a shaped link waited for the link (LinkSummary.Held).
	GeneratorLag  measure.Percentiles
	GeneratorLate int64 // sends whose GeneratorLag was above LateAfter

	// The open-model schedules of the devices that keep one (sim.Scheduled): sends due
	// before the run stopped, and of those the ones sent and never sent (Shed). Of the shed
	// sends, Behind were the generator's doing, HeldBack the shaped links', and Waiting the
	// broker's or the network's: their devices were still waiting for a publish to complete
	// (see backlog). What is left of Shed was due in the last LateAfter before the stop.
	Due, Sent, Shed, Behind, HeldBack, Waiting uint64

	// Window is the time measured traffic flowed, from the first measured message's
	// intended send time to the last delivery; Throughput is delivered messages over it.
	Window     time.Duration
	Throughput float64

	UnmeasuredOut, UnmeasuredIn int64 // payloads without a header (plain text)
	Forged                      int64 // received headers no publisher of the run sent
	Retained                    int64 // retained messages received (old news, not measured)
	Generator                   Generator
}

// MeasuredKind is what the receivers of one kind got at one QoS.
type MeasuredKind struct {
	Kind    string
	QoS     int
	Totals  measure.Totals
	Latency measure.Percentiles // intended send → delivery
}

// Generator is fleetsim watching itself, to tell when the generator rather than the broker
// was the limit.
type Generator struct {
	CPU            time.Duration // user + system CPU time of the process during the run
	Cores          int           // the cores fleetsim may use: GOMAXPROCS, at most the machine's CPUs
	Utilisation    float64       // CPU / (elapsed × cores), 0..1
	GCCycles       uint32
	GCPause        time.Duration
	MaxInFlight    int64 // most publishes in flight at once (sampled every 100 ms)
	InboxDropped   int64 // messages fleetsim's own devices could not take in time
	BrokerDropped  int64 // messages the embedded broker (inside fleetsim) dropped for slow subscribers
	Bottleneck     bool
	BottleneckWhy  []string
	MaxRSS         int64 // the process's peak resident set size, bytes; 0 where unknown
	Devices        int   // the fleet's size, for the memory a device costs
	GOMAXPROCS     int
	GOGC           int   // the collector's target percentage; -1 when off
	MemoryLimit    int64 // the runtime's soft memory limit, bytes; 0 when none
	StartingStack  int64 // the stack goroutines started with when the devices did, bytes
	startCPU       time.Duration
	startGC        uint32
	startGCPauseNs uint64
}

// minStack is the smallest stack a goroutine starts with (the runtime's fixedStack on
// Linux, Darwin and Windows).
const minStack = 2048

// Generator-bound when any of these is crossed. The ratios need at least minEvidence sends
// behind them: one stall of a busy machine in a small run is not a generator at its limit.
const (
	maxUtilisation = 0.9  // of the cores fleetsim may use
	maxLateRatio   = 0.01 // of scheduled sends
	minEvidence    = 10   // sends late or shed
)

func startGenerator() Generator {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Generator{Cores: min(runtime.GOMAXPROCS(0), runtime.NumCPU()), startCPU: cpuTime(), startGC: ms.NumGC, startGCPauseNs: ms.PauseTotalNs}
}

// maxRSS is the process's peak resident set size in bytes, 0 if unknown.
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return ru.Maxrss // bytes there, kilobytes on Linux (getrusage(2))
	}
	return ru.Maxrss << 10
}

// startingStack is the stack a new goroutine gets now. The runtime sizes it from the
// average it saw at the last collection (GODEBUG adaptivestackstart, on by default), and
// a device's goroutine that starts at 4 KiB keeps it: it uses too much to be shrunk back.
func startingStack() int64 {
	s := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// gcSettings reads the collector's settings in effect: GOGC (-1 when off) and the soft
// memory limit (0 when none).
func gcSettings() (gogc int, limit int64) {
	samples := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(samples)
	gogc = -1
	if samples[0].Value.Kind() == metrics.KindUint64 {
		if v := samples[0].Value.Uint64(); v > 0 {
			gogc = int(v)
		}
	}
	if samples[1].Value.Kind() == metrics.KindUint64 {
		if v := samples[1].Value.Uint64(); v < math.MaxInt64 {
			limit = int64(v)
		}
	}
	return gogc, limit
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// finish fills in g at the end of a run of elapsed and judges whether the generator was the
// bottleneck.
//
// brokerTrouble says whether the broker or the network failed the run somewhere (a publish
// failed, a connection dropped). Without it, sends not made while their devices waited for a
// publish to complete are the generator's too: the broker answered every publish, and a
// load device has one publish in flight, so it cannot send faster than the round trip.
func (g *Generator) finish(elapsed time.Duration, m *Measured, brokerTrouble bool) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	g.CPU = cpuTime() - g.startCPU
	g.GCCycles = ms.NumGC - g.startGC
	g.GCPause = time.Duration(ms.PauseTotalNs - g.startGCPauseNs)
	g.MaxRSS = maxRSS()
	g.GOMAXPROCS = runtime.GOMAXPROCS(0)
	g.GOGC, g.MemoryLimit = gcSettings()
	if elapsed > 0 && g.Cores > 0 {
		g.Utilisation = g.CPU.Seconds() / (elapsed.Seconds() * float64(g.Cores))
	}
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

// sentText is like "sent 516,065 of 900,032 scheduled".
func sentText(m *Measured) string {
	return fmt.Sprintf("sent %s of %s scheduled", thousands(m.Sent), thousands(m.Due))
}

// perSecond writes a rate: 59,800 or, below 100, 2.4.
func perSecond(r float64) string {
	if r < 100 {
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return thousands(uint64(r + 0.5))
}

// thousands writes n with commas between groups of three digits: 900,032.
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// summariseMeasurement settles the accounting once the run has drained; sched is where the
// schedules stood when the run stopped.
func summariseMeasurement(m *measurement, gen Generator, elapsed time.Duration, devices []*port, sched backlog, brokerTrouble bool) Measured {
	out := Measured{Due: sched.due, Sent: sched.sent, Shed: sched.shed(), Behind: sched.behind, HeldBack: sched.heldBack(), Waiting: sched.waiting}
	kinds := m.kindList()
	var lat, lag, genLag, ack []*measure.Recorder
	for _, k := range kinds {
		for q := range 3 {
			t := k.tracker[q].FinishWith(m.lastSeq)
			p := k.latency[q].Snapshot()
			lat = append(lat, k.latency[q])
			if q > 0 {
				ack = append(ack, k.ack[q])
			}
			if t.Streams == 0 && p.Count == 0 {
				continue
			}
			out.ByKind = append(out.ByKind, MeasuredKind{Kind: k.kind, QoS: q, Totals: t, Latency: p})
			out.All.Totals = addTotals(out.All.Totals, t)
		}
		lag = append(lag, k.lag)
		genLag = append(genLag, k.genLag)
		out.Scheduled += k.scheduled.Load()
		out.Late += k.late.Load()
		out.GeneratorLate += k.genLate.Load()
		out.UnmeasuredOut += k.unmeasuredOut.Load()
		out.UnmeasuredIn += k.unmeasuredIn.Load()
		out.Forged += k.forged.Load()
		out.Retained += k.retained.Load()
	}
	slices.SortFunc(out.ByKind, func(a, b MeasuredKind) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.QoS, b.QoS)) })
	out.All.Kind, out.All.QoS = "all", -1
	out.All.Latency = measure.Combined(lat...)
	out.Lag = measure.Combined(lag...)
	out.GeneratorLag = measure.Combined(genLag...)
	out.Ack = measure.Combined(ack...)
	if out.Window = m.window.span(); out.Window > 0 {
		out.Throughput = float64(out.All.Totals.Delivered) / out.Window.Seconds()
	}
	for _, d := range devices {
		gen.InboxDropped += d.stats.dropped.Load()
	}
	gen.Devices = len(devices)
	gen.finish(elapsed, &out, brokerTrouble)
	out.Generator = gen
	return out
}

func addTotals(a, b measure.Totals) measure.Totals {
	a.Streams += b.Streams
	a.Delivered += b.Delivered
	a.OutOfOrder += b.OutOfOrder
	a.Duplicates += b.Duplicates
	a.Gaps += b.Gaps
	a.Missing += b.Missing
	a.Lost += b.Lost
	a.TooLate += b.TooLate
	a.Restarts += b.Restarts
	a.Invalid += b.Invalid
	return a
}

// Values are the run's results under the names thresholds use (measure.KnownMetrics).
func (s *Summary) Values() map[string]float64 {
	m := &s.Measured
	v := measure.Values(m.All.Latency, m.All.Totals, m.Window)
	v[measure.MetricLateSends] = float64(m.Late)
	v[measure.MetricShed] = float64(m.Shed)
	v[measure.MetricSentRatio] = 1
	if m.Due > 0 {
		v[measure.MetricSentRatio] = float64(m.Sent) / float64(m.Due)
	}
	return v
}

// CheckThresholds evaluates ts against the run and records the verdicts in the summary. It
// reports whether all passed.
func (s *Summary) CheckThresholds(ts []measure.Threshold) bool {
	values := s.Values()
	s.Thresholds = s.Thresholds[:0]
	pass := true
	for _, t := range ts {
		ok, detail := t.Check(values)
		pass = pass && ok
		s.Thresholds = append(s.Thresholds, ThresholdResult{Threshold: t.String(), OK: ok, Detail: detail})
	}
	return pass
}

// ThresholdResult is one threshold's verdict.
type ThresholdResult struct {
	Threshold string
	OK        bool
	Detail    string
}

// printMeasured writes the measurement part of the summary.
func (m *Measured) print(w io.Writer) {
	if len(m.ByKind) == 0 && m.Scheduled == 0 {
		return
	}
	fmt.Fprintln(w, "\nend to end (by receiving kind; latency from the intended send time):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tqos\tdelivered\tlost\tdup\treordered\tp50\tp90\tp99\tp99.9\tmax\t")
	row := func(k MeasuredKind, name, qos string) {
		l := k.Latency
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name, qos, k.Totals.Delivered, k.Totals.Lost,
			k.Totals.Duplicates, k.Totals.OutOfOrder, dur(l.P50, l.Count), dur(l.P90, l.Count), dur(l.P99, l.Count), dur(l.P999, l.Count), dur(l.Max, l.Count))
	}
	for _, k := range m.ByKind {
		row(k, k.Kind, fmt.Sprint(k.QoS))
	}
	row(m.All, "all", "")
	tw.Flush()
	if m.Throughput > 0 {
		fmt.Fprintf(w, "throughput: %s delivered/s over %v (from the first measured send's due time to the last delivery)\n",
			perSecond(m.Throughput), m.Window.Round(time.Millisecond))
	}
	if m.Due > 0 {
		fmt.Fprintf(w, "schedules: %s; never sent: %s (the generator behind: %s; held back by shaped links: %s; waiting for the broker or the network: %s)\n",
			sentText(m), thousands(m.Shed), thousands(m.Behind), thousands(m.HeldBack), thousands(m.Waiting))
	}
	if m.Scheduled > 0 {
		fmt.Fprintf(w, "scheduled sends: %d, late (> %v): %d, lag p50 %s p99 %s max %s\n", m.Scheduled, LateAfter, m.Late,
			dur(m.Lag.P50, m.Lag.Count), dur(m.Lag.P99, m.Lag.Count), dur(m.Lag.Max, m.Lag.Count))
		if m.GeneratorLate != m.Late || m.GeneratorLag.P99 != m.Lag.P99 {
			gl := m.GeneratorLag
			fmt.Fprintf(w, "  the generator's part (not waiting for a previous publish to complete): late %d, lag p50 %s p99 %s max %s\n", m.GeneratorLate,
				dur(gl.P50, gl.Count), dur(gl.P99, gl.Count), dur(gl.Max, gl.Count))
		}
	}
	if m.Ack.Count > 0 {
		fmt.Fprintf(w, "publish acknowledgements (QoS 1, 2): p50 %s p99 %s max %s\n", dur(m.Ack.P50, 1), dur(m.Ack.P99, 1), dur(m.Ack.Max, 1))
	}
	if m.UnmeasuredOut+m.UnmeasuredIn+m.Forged > 0 {
		fmt.Fprintf(w, "not measured: %d sent and %d received plain-text payloads; %d forged headers ignored\n", m.UnmeasuredOut, m.UnmeasuredIn, m.Forged)
	}
	g := m.Generator
	fmt.Fprintf(w, "generator: %.1f CPU-seconds (%.0f%% of %d cores), %d GC cycles (%v paused), at most %d publishes in flight\n",
		g.CPU.Seconds(), 100*g.Utilisation, g.Cores, g.GCCycles, g.GCPause.Round(time.Microsecond), g.MaxInFlight)
	if g.MaxRSS > 0 {
		fmt.Fprintf(w, "memory: peak RSS %.1f MB", float64(g.MaxRSS)/1e6)
		if g.Devices >= perDeviceFrom {
			fmt.Fprintf(w, " (%d bytes a device)", g.MaxRSS/int64(g.Devices))
		}
		fmt.Fprintf(w, "; GOMAXPROCS %d, GOGC %s, memory limit %s\n", g.GOMAXPROCS, gogcText(g.GOGC), limitText(g.MemoryLimit))
	}
	if g.StartingStack > minStack {
		fmt.Fprintf(w, "note: the devices' goroutines started with %d-byte stacks, not %d: the runtime sizes new stacks from the last average it saw; GODEBUG=adaptivestackstart=0 starts them at %d\n",
			g.StartingStack, minStack, minStack)
	}
	for _, why := range g.BottleneckWhy {
		fmt.Fprintln(w, "generator limit: "+why)
	}
}

// perDeviceFrom is the fleet size from which the summary gives the memory a device costs:
// in a smaller fleet the process's own memory is most of it, and the figure means nothing.
const perDeviceFrom = 10_000

// dur prints a latency, or "-" when nothing was recorded.
func dur(d time.Duration, count int64) string {
	if count == 0 {
		return "-"
	}
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

// ReportSchema names the JSON report's format; it changes only when a field changes meaning
// or goes away (new fields may be added within a version).
const ReportSchema = "fleetsim.report/v1"

// WriteJSON writes the machine-readable report (README.md, "The JSON report", documents its
// fields).
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s.report())
}

type jsonReport struct {
	Schema         string          `json:"schema"`
	Scenario       string          `json:"scenario"`
	Broker         string          `json:"broker"`
	Started        time.Time       `json:"started"`
	ElapsedSeconds float64         `json:"elapsed_seconds"`
	Interrupted    bool            `json:"interrupted"`
	Passed         bool            `json:"passed"`
	Verdict        Verdict         `json:"verdict"`
	Reasons        []string        `json:"verdict_reasons"`
	Totals         jsonTotals      `json:"totals"`
	Latency        jsonLatency     `json:"latency_seconds"`
	ByKind         []jsonByKind    `json:"by_kind"`
	Publishing     jsonPublishing  `json:"publishing"`
	Generator      jsonGenerator   `json:"generator"`
	Connections    jsonConnections `json:"connections"`
	Kinds          []jsonKind      `json:"kinds"`
	Links          []jsonLink      `json:"links"`
	Thresholds     []jsonThreshold `json:"thresholds"`
	Errors         []string        `json:"errors"`
}

type jsonTotals struct {
	Published       int64   `json:"published"`
	Received        int64   `json:"received"`
	Delivered       uint64  `json:"delivered"`
	Lost            uint64  `json:"lost"`
	Duplicates      uint64  `json:"duplicates"`
	OutOfOrder      uint64  `json:"out_of_order"`
	TooLate         uint64  `json:"too_late"`
	LossRatio       float64 `json:"loss_ratio"`
	Throughput      float64 `json:"throughput_per_second"`
	Window          float64 `json:"throughput_window_seconds"`
	Failed          int64   `json:"publish_failures"`
	Dropped         int64   `json:"inbox_dropped"`
	Rejected        int64   `json:"rejected"`
	UnmeasuredSent  int64   `json:"unmeasured_sent"`
	UnmeasuredRecvd int64   `json:"unmeasured_received"`
	Forged          int64   `json:"forged"`
	Retained        int64   `json:"retained_received"`
}

type jsonLatency struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

type jsonByKind struct {
	Kind       string      `json:"kind"`
	QoS        int         `json:"qos"`
	Streams    int         `json:"streams"`
	Delivered  uint64      `json:"delivered"`
	Lost       uint64      `json:"lost"`
	Duplicates uint64      `json:"duplicates"`
	OutOfOrder uint64      `json:"out_of_order"`
	Latency    jsonLatency `json:"latency_seconds"`
}

type jsonPublishing struct {
	Scheduled     int64       `json:"scheduled"`
	Late          int64       `json:"late"`
	Lag           jsonLatency `json:"lag_seconds"`
	Ack           jsonLatency `json:"ack_seconds"`
	GeneratorLate int64       `json:"generator_late"`
	GeneratorLag  jsonLatency `json:"generator_lag_seconds"`
	Due           uint64      `json:"due"`
	Sent          uint64      `json:"sent"`
	Shed          uint64      `json:"shed"`
	Behind        uint64      `json:"shed_behind"`
	HeldBack      uint64      `json:"shed_held_back"`
	Waiting       uint64      `json:"shed_waiting"`
	SentRatio     float64     `json:"sent_ratio"`
}

type jsonGenerator struct {
	CPUSeconds         float64  `json:"cpu_seconds"`
	Cores              int      `json:"cores"`
	Utilisation        float64  `json:"utilisation"`
	GCCycles           uint32   `json:"gc_cycles"`
	GCPauseSeconds     float64  `json:"gc_pause_seconds"`
	MaxInFlight        int64    `json:"max_in_flight"`
	BrokerDropped      int64    `json:"embedded_broker_dropped"`
	Bottleneck         bool     `json:"bottleneck"`
	Reasons            []string `json:"reasons"`
	MaxRSSBytes        int64    `json:"max_rss_bytes"`
	GOMAXPROCS         int      `json:"gomaxprocs"`
	GOGC               int      `json:"gogc"`
	MemoryLimitBytes   int64    `json:"memory_limit_bytes"`
	StartingStackBytes int64    `json:"starting_stack_bytes"`
}

type jsonConnections struct {
	Opened                int     `json:"opened"`
	Connects              int64   `json:"connects"`
	Lost                  int64   `json:"lost"`
	PeakConnectsPerSecond float64 `json:"peak_connects_per_second"`
	Episodes              int     `json:"loss_episodes"`
	FullReconnectSeconds  float64 `json:"full_reconnect_seconds"`
	StillDown             int     `json:"still_down"`
}

type jsonKind struct {
	Kind         string `json:"kind"`
	Devices      int    `json:"devices"`
	Published    int64  `json:"published"`
	BytesOut     int64  `json:"bytes_out"`
	Received     int64  `json:"received"`
	BytesIn      int64  `json:"bytes_in"`
	StateChanges int64  `json:"state_changes"`
	Rejected     int64  `json:"rejected"`
	Dropped      int64  `json:"inbox_dropped"`
	Failed       int64  `json:"publish_failures"`
}

type jsonLink struct {
	Profile         string      `json:"profile"`
	Links           int         `json:"links"`
	UpBytesPerSec   float64     `json:"up_bytes_per_sec"`
	DownBytesPerSec float64     `json:"down_bytes_per_sec"`
	AchievedUp      float64     `json:"achieved_up_bytes_per_sec"`
	AchievedDown    float64     `json:"achieved_down_bytes_per_sec"`
	BytesUp         int64       `json:"bytes_up"`
	BytesDown       int64       `json:"bytes_down"`
	WaitedUpSeconds float64     `json:"waited_up_seconds"`
	Outages         int64       `json:"outages"`
	Connects        int64       `json:"connects"`
	Held            jsonLatency `json:"held_seconds"`
	HeldLate        int64       `json:"held_late"`
	Shed            uint64      `json:"shed"`
}

type jsonThreshold struct {
	Threshold string `json:"threshold"`
	OK        bool   `json:"ok"`
	Detail    string `json:"detail"`
}

func latencyJSON(p measure.Percentiles) jsonLatency {
	return jsonLatency{Count: p.Count, Min: p.Min.Seconds(), Mean: p.Mean.Seconds(), P50: p.P50.Seconds(),
		P90: p.P90.Seconds(), P99: p.P99.Seconds(), P999: p.P999.Seconds(), Max: p.Max.Seconds()}
}

func (s *Summary) report() jsonReport {
	m := &s.Measured
	r := jsonReport{
		Schema: ReportSchema, Scenario: s.Scenario, Broker: s.Broker, Started: s.Started.UTC(),
		ElapsedSeconds: s.Elapsed.Seconds(), Interrupted: s.Interrupted, Passed: s.Passed(), Verdict: s.Verdict, Reasons: nonNil(s.Reasons),
		Latency: latencyJSON(m.All.Latency),
		Publishing: jsonPublishing{Scheduled: m.Scheduled, Late: m.Late, Lag: latencyJSON(m.Lag), Ack: latencyJSON(m.Ack),
			GeneratorLate: m.GeneratorLate, GeneratorLag: latencyJSON(m.GeneratorLag),
			Due: m.Due, Sent: m.Sent, Shed: m.Shed, Behind: m.Behind, HeldBack: m.HeldBack, Waiting: m.Waiting, SentRatio: s.Values()[measure.MetricSentRatio]},
		Generator: jsonGenerator{CPUSeconds: m.Generator.CPU.Seconds(), Cores: m.Generator.Cores, Utilisation: m.Generator.Utilisation,
			GCCycles: m.Generator.GCCycles, GCPauseSeconds: m.Generator.GCPause.Seconds(), MaxInFlight: m.Generator.MaxInFlight, BrokerDropped: m.Generator.BrokerDropped,
			Bottleneck: m.Generator.Bottleneck, Reasons: nonNil(m.Generator.BottleneckWhy),
			MaxRSSBytes: m.Generator.MaxRSS, GOMAXPROCS: m.Generator.GOMAXPROCS, GOGC: m.Generator.GOGC, MemoryLimitBytes: m.Generator.MemoryLimit,
			StartingStackBytes: m.Generator.StartingStack},
		Connections: jsonConnections{Opened: s.Connections.Connections, Connects: s.Connections.Connects, Lost: s.Connections.Lost,
			PeakConnectsPerSecond: s.Connections.PeakPerSecond, Episodes: s.Connections.Episodes,
			FullReconnectSeconds: s.Connections.Longest.Seconds(), StillDown: s.Connections.StillDown},
		ByKind: []jsonByKind{}, Kinds: []jsonKind{}, Links: []jsonLink{}, Thresholds: []jsonThreshold{}, Errors: nonNil(s.Errors),
	}
	t := m.All.Totals
	r.Totals = jsonTotals{Delivered: t.Delivered, Lost: t.Lost, Duplicates: t.Duplicates, OutOfOrder: t.OutOfOrder,
		TooLate: t.TooLate, LossRatio: t.LossRatio(), UnmeasuredSent: m.UnmeasuredOut, UnmeasuredRecvd: m.UnmeasuredIn,
		Forged: m.Forged, Retained: m.Retained}
	r.Totals.Throughput, r.Totals.Window = m.Throughput, m.Window.Seconds()
	for _, k := range s.Kinds {
		r.Totals.Published += k.Out
		r.Totals.Received += k.In
		r.Totals.Failed += k.Failed
		r.Totals.Dropped += k.Dropped
		r.Totals.Rejected += k.Rejected
		r.Kinds = append(r.Kinds, jsonKind{Kind: k.Kind, Devices: k.Devices, Published: k.Out, BytesOut: k.OutBytes, Received: k.In,
			BytesIn: k.InBytes, StateChanges: k.Changes, Rejected: k.Rejected, Dropped: k.Dropped, Failed: k.Failed})
	}
	for _, k := range m.ByKind {
		r.ByKind = append(r.ByKind, jsonByKind{Kind: k.Kind, QoS: k.QoS, Streams: k.Totals.Streams, Delivered: k.Totals.Delivered,
			Lost: k.Totals.Lost, Duplicates: k.Totals.Duplicates, OutOfOrder: k.Totals.OutOfOrder, Latency: latencyJSON(k.Latency)})
	}
	for _, l := range s.Links {
		r.Links = append(r.Links, jsonLink{Profile: l.Profile, Links: l.Links, UpBytesPerSec: l.UpRate, DownBytesPerSec: l.DownRate,
			AchievedUp: l.AchievedUp, AchievedDown: l.AchievedDn, BytesUp: l.BytesUp, BytesDown: l.BytesDown,
			WaitedUpSeconds: l.WaitUp.Seconds(), Outages: l.Outages, Connects: l.Connects,
			Held: latencyJSON(l.Held), HeldLate: l.HeldLate, Shed: l.Shed})
	}
	for _, th := range s.Thresholds {
		r.Thresholds = append(r.Thresholds, jsonThreshold(th))
	}
	return r
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func gogcText(gogc int) string {
	if gogc < 0 {
		return "off"
	}
	return strconv.Itoa(gogc)
}

func limitText(limit int64) string {
	if limit <= 0 {
		return "none"
	}
	return fmt.Sprintf("%.0f MiB", float64(limit)/(1<<20))
}
