package runner

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// Portable is what a report carries beyond its figures so that the reports of the shards
// of one run can be merged exactly (Merge): the latency histograms in a portable form and,
// in a shard, every stream's tallies. Percentiles of a merged report come from merged
// histograms; its loss, duplicates and reordering from the streams' tallies, including
// the tail of a stream whose publisher ran in another shard than its receiver, which
// neither shard can count alone.
type Portable struct {
	Latency      []KindHistogram // per receiving kind and QoS, as Measured.ByKind
	Lag, Ack     measure.Portable
	GeneratorLag measure.Portable
	// Published and Received are the streams' tallies; set only in a shard (Config.Shard).
	Published []PublishedStream
	Received  []ReceivedStream
	Streams   bool // the tallies were taken (a shard's report)
}

// KindHistogram is the latency of what one kind received at one QoS.
type KindHistogram struct {
	Kind    string
	QoS     int
	Latency measure.Portable
}

// PublishedStream is one stream a shard published: its id (unique in the run), topic and
// the highest seq it sent.
type PublishedStream struct {
	ID    uint32
	Topic string
	Last  uint64
}

// ReceivedStream is what one receiver of a shard got from one stream. Receiver names the
// receiver within the run: "group:NAME" for the members of a shared subscription's group
// (who may run in several shards, and count as one), else the shard's own receiver number.
// Lost is what the shard counted: the seqs it missed from First to Max, and the tail to
// the publisher's last seq when the publisher ran in the same shard; merge adds the tail
// of the others.
type ReceivedStream struct {
	Kind     string
	QoS      int
	Receiver string
	ID       uint32
	Topic    string
	measure.StreamTally
}

// portableOf takes the run's portable parts; the streams only in a shard.
func portableOf(m *measurement, streams bool) Portable {
	p := Portable{Streams: streams}
	var lag, genLag, ack []*measure.Recorder
	for _, k := range m.kindList() {
		for q := range 3 {
			if h := k.latency[q].Portable(); h.Count > 0 || k.tracker[q].Snapshot().Streams > 0 {
				p.Latency = append(p.Latency, KindHistogram{Kind: k.kind, QoS: q, Latency: h})
			}
			if q > 0 {
				ack = append(ack, k.ack[q])
			}
		}
		lag, genLag = append(lag, k.lag), append(genLag, k.genLag)
	}
	slices.SortFunc(p.Latency, func(a, b KindHistogram) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.QoS, b.QoS)) })
	p.Lag, p.GeneratorLag, p.Ack = measure.PortableOf(lag...), measure.PortableOf(genLag...), measure.PortableOf(ack...)
	if streams {
		p.Published, p.Received = m.publishedStreams(), m.receivedStreams()
	}
	return p
}

// publishedStreams lists every stream this process published, by id.
func (m *measurement) publishedStreams() []PublishedStream {
	var out []PublishedStream
	for id := uint32(1); id <= m.streams.n.Load(); id++ {
		if s := m.streams.get(id); s != nil {
			out = append(out, PublishedStream{ID: s.id, Topic: s.topic, Last: s.last.Load()})
		}
	}
	return out
}

// receivedStreams lists what every receiver got from every stream that merge may need:
// those published in other shards (whose tails only merge can count) and those of shared
// subscriptions' groups (whose members may run in several shards), sorted. A receiver's
// own shard's streams are settled in the shard's totals, and a report of a shard with a
// million home-local streams need not list them.
func (m *measurement) receivedStreams() []ReceivedStream {
	m.mu.RLock()
	groups := make(map[uint32]string, len(m.groups))
	for name, id := range m.groups {
		groups[id] = name
	}
	m.mu.RUnlock()
	var out []ReceivedStream
	for _, k := range m.kindList() {
		for q := range 3 {
			for _, t := range k.tracker[q].Tallies(m.lastSeq) {
				rcv, id := uint32(uint64(t.Key)>>32), uint32(t.Key)
				name, group := groups[rcv]
				if !group && !m.isForeign(id) {
					continue // settled here, tail and all: merge has nothing to add
				}
				if group {
					name = "group:" + name
				} else {
					name = fmt.Sprint(rcv)
				}
				topic := m.foreign.get(id)
				if s := m.stream(id); s != nil {
					topic = s.topic
				}
				out = append(out, ReceivedStream{Kind: k.kind, QoS: q, Receiver: name, ID: id, Topic: topic, StreamTally: t})
			}
		}
	}
	slices.SortFunc(out, func(a, b ReceivedStream) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.QoS, b.QoS), cmp.Compare(a.Receiver, b.Receiver), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// ShardInfo is what a summary says of its place in a sharded run.
type ShardInfo struct {
	Shard     Shard
	RunID     string
	StartAt   time.Time     // zero when not given
	StartLate time.Duration // how long after StartAt the devices started
}
