package runner

import (
	"time"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// The report's parts for merging the reports of a sharded run. They are additions to
// fleetsim.report/v1 (a version changes only when a field changes meaning or goes away):
// a reader of v1 that knows nothing of shards reads a shard's report as it always did.

type jsonShard struct {
	Index            int     `json:"index,omitempty"` // absent in a merged report
	Count            int     `json:"count,omitempty"`
	RunID            string  `json:"run_id,omitempty"`
	StartAt          string  `json:"start_at,omitempty"`
	StartLateSeconds float64 `json:"start_late_seconds"`
}

// jsonHistograms are the latency histograms (measure.Portable: HdrHistogram's V2
// compressed encoding, base64, with exact count, sum, min and max).
type jsonHistograms struct {
	Latency      []jsonKindHistogram `json:"latency"`
	Lag          measure.Portable    `json:"lag"`
	Ack          measure.Portable    `json:"ack"`
	GeneratorLag measure.Portable    `json:"generator_lag"`
}

type jsonKindHistogram struct {
	Kind    string           `json:"kind"`
	QoS     int              `json:"qos"`
	Latency measure.Portable `json:"latency"`
}

// jsonStreams are a shard's streams' tallies, in columns of short names: a shard of a
// million devices lists a million streams.
type jsonStreams struct {
	Published []jsonPublished `json:"published"`
	Received  []jsonReceived  `json:"received"`
}

type jsonPublished struct {
	ID    uint32 `json:"id"`
	Topic string `json:"topic"`
	Last  uint64 `json:"last"`
}

type jsonReceived struct {
	Kind       string `json:"kind"`
	QoS        int    `json:"qos"`
	Receiver   string `json:"rcv"`
	ID         uint32 `json:"id"`
	Topic      string `json:"topic"`
	First      uint64 `json:"first"`
	Max        uint64 `json:"max"`
	Delivered  uint64 `json:"delivered"`
	Duplicates uint64 `json:"dup,omitempty"`
	OutOfOrder uint64 `json:"ooo,omitempty"`
	TooLate    uint64 `json:"late,omitempty"`
	Lost       uint64 `json:"lost,omitempty"`
	Restarts   uint64 `json:"restarts,omitempty"`
}

// jsonClock is a shard's clock against shard 1 (ClockEstimate).
type jsonClock struct {
	Shard       string  `json:"shard"`
	Reference   bool    `json:"reference"`
	Measured    bool    `json:"measured"`
	Offset      float64 `json:"offset_seconds"`
	Uncertainty float64 `json:"uncertainty_seconds"`
	RoundTrip   float64 `json:"round_trip_seconds"`
	Samples     int     `json:"round_trips"`
	Why         string  `json:"why_not_measured,omitempty"`
}

// shardJSON adds the summary's portable parts to r.
func (s *Summary) shardJSON(r *jsonReport) {
	for _, c := range s.Clocks {
		r.Clocks = append(r.Clocks, jsonClock{Shard: c.Shard.String(), Reference: c.Reference, Measured: c.Measured, Offset: c.Offset.Seconds(),
			Uncertainty: c.Uncertainty.Seconds(), RoundTrip: c.RoundTrip.Seconds(), Samples: c.Samples, Why: c.Why})
	}
	r.ClockNotes = s.ClockNotes
	p := &s.Portable
	h := &jsonHistograms{Latency: []jsonKindHistogram{}, Lag: p.Lag, Ack: p.Ack, GeneratorLag: p.GeneratorLag}
	for _, k := range p.Latency {
		h.Latency = append(h.Latency, jsonKindHistogram(k))
	}
	r.Histograms = h
	if sh := s.Sharding; sh.Shard.Count > 0 || !sh.StartAt.IsZero() {
		r.Shard = &jsonShard{Index: sh.Shard.Index, Count: sh.Shard.Count, RunID: sh.RunID, StartLateSeconds: sh.StartLate.Seconds()}
		if !sh.StartAt.IsZero() {
			r.Shard.StartAt = sh.StartAt.UTC().Format(time.RFC3339Nano)
		}
	}
	if !p.Streams {
		return
	}
	st := &jsonStreams{Published: []jsonPublished{}, Received: []jsonReceived{}}
	for _, ps := range p.Published {
		st.Published = append(st.Published, jsonPublished(ps))
	}
	for _, rs := range p.Received {
		t := rs.StreamTally
		st.Received = append(st.Received, jsonReceived{Kind: rs.Kind, QoS: rs.QoS, Receiver: rs.Receiver, ID: rs.ID, Topic: rs.Topic,
			First: t.First, Max: t.Max, Delivered: t.Delivered, Duplicates: t.Duplicates, OutOfOrder: t.OutOfOrder,
			TooLate: t.TooLate, Lost: t.Lost, Restarts: t.Restarts})
	}
	r.Streams = st
}
