package runner

import (
	"slices"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/sim/link"
	"github.com/fleetsim/fleetsim/sim/measure"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// Summary is what a run did, per kind and per device.
type Summary struct {
	Scenario    string
	Broker      string
	Client      string // the MQTT client the connections used: paho or lean
	Protocol    string // the MQTT version they spoke: 3.1.1
	Started     time.Time
	Elapsed     time.Duration
	Interrupted bool // stopped by a signal before its duration
	Kinds       []KindSummary
	Devices     []DeviceSummary
	Links       []LinkSummary // shaped links per distinct profile; empty when none
	Errors      []string      // devices that stopped with an error
	Measured    Measured      // end-to-end accounting and the generator's own health
	Connections ConnSummary   // drops, reconnects, connect rates
	Thresholds  []ThresholdResult
	Verdict     Verdict
	Reasons     []string // what the verdict rests on; for Passed, nothing unless the generator was the limit and that was allowed

	Sharding ShardInfo // the shard this run was, and its start time; zero in one process
	Portable Portable  // what merging with other shards' reports needs (see Merge)
	// Clocks are the shards' clocks against shard 1 (one in a shard's summary, each
	// shard's in a merged one); ClockNotes flag latency between shards whose clocks are
	// known too loosely for it.
	Clocks     []ClockEstimate
	ClockNotes []string
}

// LinkSummary compares what one profile's links were meant to carry with what they did.
type LinkSummary struct {
	Profile                string
	Links                  int
	UpRate, DownRate       float64       // configured bytes/s per link; 0 = unlimited
	Latency, Jitter        time.Duration // configured one-way delay: Latency + 0..Jitter
	BytesUp, BytesDown     int64
	AchievedUp, AchievedDn float64 // average bytes/s per link over the run
	WaitUp                 time.Duration
	Outages                int64
	Connects               int64 // connections opened over the profile's links, reconnects included
	// Held is how long the scheduled sends of the profile's devices waited for their link
	// (from due until the device's previous publish got through), HeldLate how many waited
	// more than LateAfter, and Shed how many were never sent for it.
	Held     measure.Percentiles
	HeldLate int64
	Shed     uint64
	HeldHist measure.Portable // Held's histogram, for merging reports
}

// KindSummary adds up the devices of one kind.
type KindSummary struct {
	Kind                               string
	Devices                            int
	Out, OutBytes, In, InBytes         int64
	Rejected, Dropped, Failed, Changes int64
}

// add adds o's counts to k.
func (k *KindSummary) add(o KindSummary) {
	k.Devices += o.Devices
	k.Out += o.Out
	k.OutBytes += o.OutBytes
	k.In += o.In
	k.InBytes += o.InBytes
	k.Rejected += o.Rejected
	k.Dropped += o.Dropped
	k.Failed += o.Failed
	k.Changes += o.Changes
}

// total adds up every kind.
func (s *Summary) total() KindSummary {
	var t KindSummary
	for _, k := range s.Kinds {
		t.add(k)
	}
	return t
}

// DeviceSummary is one device's path through its states.
type DeviceSummary struct {
	Home   int
	ID     string
	Kind   string
	States []string // every state entered, in order; the first is the initial state
}

// maxDeviceLines bounds the per-device part of the printed summary for large fleets.
const maxDeviceLines = 30

func summarise(s *scenario.Scenario, broker string, started time.Time, devices []*port) *Summary {
	sum := &Summary{Scenario: s.Name, Broker: broker, Started: started, Elapsed: time.Since(started)}
	byKind := map[string]*KindSummary{}
	for _, d := range devices {
		k := byKind[d.km.kind]
		if k == nil {
			k = &KindSummary{Kind: d.km.kind}
			byKind[d.km.kind] = k
		}
		st := &d.stats
		k.Devices++
		k.Out += st.out.Load()
		k.OutBytes += st.outBytes.Load()
		k.In += st.in.Load()
		k.InBytes += st.inBytes.Load()
		k.Rejected += st.rejected.Load()
		k.Dropped += st.dropped.Load()
		k.Failed += st.failed.Load()
		st.mu.Lock()
		states := slices.Clone(st.states)
		st.mu.Unlock()
		if len(states) > 1 {
			k.Changes += int64(len(states) - 1)
		}
		sum.Devices = append(sum.Devices, DeviceSummary{Home: d.home, ID: d.id, Kind: d.km.kind, States: states})
	}
	for _, k := range byKind {
		sum.Kinds = append(sum.Kinds, *k)
	}
	slices.SortFunc(sum.Kinds, func(a, b KindSummary) int { return strings.Compare(a.Kind, b.Kind) })
	return sum
}

// summariseLinks adds up the links per profile, in the order they were made, with what
// their devices' sends waited for them (held; sched's sends never sent). Links are grouped
// by their whole profile, not its name: two groups that override a profile differently
// under the same name (wifi*) get a row each, with their own rates. Rates are over up, the
// time since the links were first dialled.
func summariseLinks(links []*link.Link, up time.Duration, held map[link.Profile]*linkHeld, sched backlog) []LinkSummary {
	var out []LinkSummary
	row := map[link.Profile]int{}
	for _, l := range links {
		if l == nil {
			continue
		}
		p := l.Profile()
		i, ok := row[p]
		if !ok {
			i = len(out)
			row[p] = i
			out = append(out, LinkSummary{Profile: p.Name, UpRate: p.UpBytesPerSec, DownRate: p.DownBytesPerSec,
				Latency: p.Latency, Jitter: p.Jitter})
			if h := held[p]; h != nil {
				out[i].Held, out[i].HeldLate, out[i].Shed = h.wait.Snapshot(), h.late.Load(), sched.heldBy[h]
				out[i].HeldHist = h.wait.Portable()
			}
		}
		st := l.Stats()
		r := &out[i]
		r.Links++
		r.BytesUp += st.BytesUp
		r.BytesDown += st.BytesDown
		r.WaitUp += st.WaitUp
		r.Outages += st.Outages
		r.Connects += st.Dials
	}
	for i := range out {
		r := &out[i]
		perLink := float64(r.Links) * max(up.Seconds(), 1e-9)
		r.AchievedUp, r.AchievedDn = float64(r.BytesUp)/perLink, float64(r.BytesDown)/perLink
	}
	return out
}
