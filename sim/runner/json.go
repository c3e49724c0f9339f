package runner

import (
	"encoding/json"
	"io"
	"time"

	"github.com/fleetsim/fleetsim/sim/measure"
)

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
	Client         string          `json:"client"`
	Protocol       string          `json:"protocol"`
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

	// For merging the reports of a sharded run (json_shard.go).
	Shard      *jsonShard      `json:"shard,omitempty"`
	Histograms *jsonHistograms `json:"histograms,omitempty"`
	Streams    *jsonStreams    `json:"streams,omitempty"`
	Clocks     []jsonClock     `json:"clocks,omitempty"`
	ClockNotes []string        `json:"clock_notes,omitempty"`
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
	WindowStart     string  `json:"throughput_window_start"`
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
	WakeBatchSeconds   float64  `json:"wake_batch_seconds"`
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
	// Added for merging: the one-way delay set and Held's histogram.
	DelaySeconds  float64           `json:"one_way_delay_seconds"`
	JitterSeconds float64           `json:"jitter_seconds"`
	HeldHistogram *measure.Portable `json:"held_histogram,omitempty"`
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
		Schema: ReportSchema, Scenario: s.Scenario, Broker: s.Broker, Client: s.Client, Protocol: s.Protocol, Started: s.Started.UTC(),
		ElapsedSeconds: s.Elapsed.Seconds(), Interrupted: s.Interrupted, Passed: s.Passed(), Verdict: s.Verdict, Reasons: nonNil(s.Reasons),
		Latency: latencyJSON(m.All.Latency),
		Publishing: jsonPublishing{Scheduled: m.Scheduled, Late: m.Late, Lag: latencyJSON(m.Lag), Ack: latencyJSON(m.Ack),
			GeneratorLate: m.GeneratorLate, GeneratorLag: latencyJSON(m.GeneratorLag),
			Due: m.Due, Sent: m.Sent, Shed: m.Shed, Behind: m.Behind, HeldBack: m.HeldBack, Waiting: m.Waiting, SentRatio: s.Values()[measure.MetricSentRatio]},
		Generator: jsonGenerator{CPUSeconds: m.Generator.CPU.Seconds(), Cores: m.Generator.Cores, Utilisation: m.Generator.Utilisation,
			GCCycles: m.Generator.GCCycles, GCPauseSeconds: m.Generator.GCPause.Seconds(), MaxInFlight: m.Generator.MaxInFlight, BrokerDropped: m.Generator.BrokerDropped,
			Bottleneck: m.Generator.Bottleneck, Reasons: nonNil(m.Generator.BottleneckWhy),
			MaxRSSBytes: m.Generator.MaxRSS, GOMAXPROCS: m.Generator.GOMAXPROCS, GOGC: m.Generator.GOGC, MemoryLimitBytes: m.Generator.MemoryLimit,
			StartingStackBytes: m.Generator.StartingStack, WakeBatchSeconds: m.Generator.WakeBatch.Seconds()},
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
	if !m.WindowStart.IsZero() {
		r.Totals.WindowStart = m.WindowStart.Format(time.RFC3339Nano)
	}
	all := s.total()
	r.Totals.Published, r.Totals.Received, r.Totals.Failed, r.Totals.Dropped, r.Totals.Rejected = all.Out, all.In, all.Failed, all.Dropped, all.Rejected
	for _, k := range s.Kinds {
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
			Held: latencyJSON(l.Held), HeldLate: l.HeldLate, Shed: l.Shed,
			DelaySeconds: l.Latency.Seconds(), JitterSeconds: l.Jitter.Seconds(), HeldHistogram: &l.HeldHist})
	}
	for _, th := range s.Thresholds {
		r.Thresholds = append(r.Thresholds, jsonThreshold(th))
	}
	s.shardJSON(&r)
	return r
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
