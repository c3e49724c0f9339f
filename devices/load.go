package devices

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/pace"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// LoadParams shape a load generator's stream of telemetry: compact binary payloads of an
// exact size, sent on an open-model schedule (DESIGN.md §4) to the device's topic.
type LoadParams struct {
	PayloadBytes int         `yaml:"payload_bytes"` // whole payload, header included
	Rate         float64     `yaml:"rate"`          // messages per second; 0: one per the group's period
	Phases       []LoadPhase `yaml:"phases"`        // a rate curve instead of rate
}

// LoadPhase is one part of a rate curve: a constant rate, or a ramp from one rate to
// another (when from or to is given), for a while.
type LoadPhase struct {
	For  time.Duration `yaml:"for"`
	Rate float64       `yaml:"rate"`
	From float64       `yaml:"from"`
	To   float64       `yaml:"to"`
}

// Limits of the load kind.
const (
	maxLoadPayload = 1 << 20 // bytes
	maxLoadRate    = 100_000 // messages per second per device
)

func loadKind() sim.Kind {
	return sim.NewKind("load generator: fixed-size measured payloads on an open-model schedule (constant rate, ramps, phases)",
		func() LoadParams { return LoadParams{PayloadBytes: 64} }, buildLoad)
}

func buildLoad(cfg sim.DeviceConfig, p LoadParams) (sim.Device, error) {
	if p.PayloadBytes < sim.HeaderRoom || p.PayloadBytes > maxLoadPayload {
		return nil, &sim.ParamError{Field: "payload_bytes", Err: fmt.Errorf("%d is outside %d..%d (the measurement header takes %d)",
			p.PayloadBytes, sim.HeaderRoom, maxLoadPayload, sim.HeaderRoom)}
	}
	d := &load{topic: cfg.Topic, qos: cfg.QoS, payload: loadPayload(p.PayloadBytes), notBefore: cfg.Clock.WallStart.UnixNano()}
	peak := 0.0
	switch {
	case len(p.Phases) > 0:
		if p.Rate != 0 {
			return nil, &sim.ParamError{Field: "rate", Err: fmt.Errorf("give rate or phases, not both")}
		}
		phases := make([]pace.Phase, 0, len(p.Phases))
		for i, ph := range p.Phases {
			pacer, top, err := phasePacer(ph)
			if err != nil {
				return nil, &sim.ParamError{Field: "phases", Err: fmt.Errorf("[%d]: %w", i, err)}
			}
			peak = max(peak, top)
			phases = append(phases, pace.Phase{Pacer: pacer, Duration: ph.For})
		}
		d.pacer = pace.Phases(phases)
		d.first = 1 / max(peak, 1e-9)
	case p.Rate != 0:
		if !(p.Rate > 0 && p.Rate <= maxLoadRate) {
			return nil, &sim.ParamError{Field: "rate", Err: fmt.Errorf("%g is outside (0, %d] messages per second", p.Rate, maxLoadRate)}
		}
		peak = p.Rate
		d.pacer, d.first = pace.Constant{Rate: p.Rate}, 1/p.Rate
	case cfg.Period > 0:
		peak = 1 / cfg.Period.Seconds()
		d.pacer, d.first = pace.Constant{Rate: peak}, cfg.Period.Seconds()
	default:
		return nil, &sim.ParamError{Field: "rate", Err: fmt.Errorf("a load device needs a rate, phases, or the group's period")}
	}
	if cfg.MaxRate > 0 && peak > cfg.MaxRate*1.0001 {
		return nil, &sim.ParamError{Field: "rate", Err: fmt.Errorf("peak rate %g/s is above the group's max_rate %g/s: raise max_rate, or the schedule cannot be kept", peak, cfg.MaxRate)}
	}
	if err := topic.ValidName(cfg.Topic); err != nil {
		return nil, fmt.Errorf("topic %q: %w", cfg.Topic, err)
	}
	return d, nil
}

// phasePacer turns one phase into a pacer and its highest rate.
func phasePacer(ph LoadPhase) (pace.Pacer, float64, error) {
	if ph.For <= 0 {
		return nil, 0, fmt.Errorf("for: want a positive duration such as 30s, got %v", ph.For)
	}
	for _, r := range []float64{ph.Rate, ph.From, ph.To} {
		if !(r >= 0 && r <= maxLoadRate) {
			return nil, 0, fmt.Errorf("rate %g is outside 0..%d messages per second", r, maxLoadRate)
		}
	}
	if ph.From != 0 || ph.To != 0 {
		if ph.Rate != 0 {
			return nil, 0, fmt.Errorf("give rate (constant) or from/to (a ramp), not both")
		}
		return pace.Linear{Start: ph.From, End: ph.To, Over: ph.For}, max(ph.From, ph.To), nil
	}
	if ph.Rate == 0 {
		return pause{}, 0, nil
	}
	return pace.Constant{Rate: ph.Rate}, ph.Rate, nil
}

// pause is a phase that sends nothing.
type pause struct{}

func (pause) Pace(time.Duration, uint64) (time.Duration, bool) { return 0, true }
func (pause) String() string                                   { return "pause" }

// loadPayloads holds one payload per size, shared by every load device: the engine only
// reads a device's payload (it stamps a copy), and a million devices need not hold a
// million copies of the same bytes.
var loadPayloads sync.Map // int → []byte

// loadPayload returns the shared payload of size bytes: header room, then dots.
func loadPayload(size int) []byte {
	if p, ok := loadPayloads.Load(size); ok {
		return p.([]byte)
	}
	p := sim.Reserve(size)
	copy(p[sim.HeaderRoom:], strings.Repeat(".", size-sim.HeaderRoom))
	actual, _ := loadPayloads.LoadOrStore(size, p)
	return actual.([]byte)
}

// load sends on its schedule and never slips: a send that falls behind goes out at once,
// measured from when it was due, and the next keeps its own due time.
//
// A large fleet is mostly load devices waiting for their next send, so their goroutines
// are what it costs. A waiting device holds nothing but this struct and its goroutine: it
// sleeps on the engine's alarm (IO.SleepUntil), not on a timer of its own, and the
// functions it waits in have small frames, so its stack stays at the 2 KiB minimum.
type load struct {
	topic   string // only what it needs of its DeviceConfig: a million of them add up
	pacer   pace.Pacer
	payload []byte  // shared (loadPayload): never written
	first   float64 // seconds: the device's start is spread over one interval of its peak rate
	// start (Unix nanoseconds; 0 until Run sets it) and sent are read by DueBefore from the
	// engine's goroutines while the device runs.
	start atomic.Int64
	sent  atomic.Uint64 // sends attempted: made, failed, or cut short by the run's end
	// notBefore (Unix nanoseconds) is the run's start (Clock.WallStart): a device started
	// ahead of it, as the shards of a run start theirs so that every receiver has
	// subscribed before the first send, begins its schedule there.
	notBefore int64
	qos       byte
}

var (
	_ sim.Scheduled = (*load)(nil)
	_ sim.Pipeliner = (*load)(nil)
)

// PipelinesPublishes implements sim.Pipeliner: a load device never looks at its
// publishes' outcomes (the engine counts them).
func (*load) PipelinesPublishes() {}

// DueBefore implements sim.Scheduled: the sends the device's schedule called for before t.
func (d *load) DueBefore(t time.Time) uint64 {
	start := d.start.Load()
	if start == 0 {
		return 0
	}
	return pace.DueBefore(d.pacer, time.Unix(0, start), t, d.sent.Load())
}

// Run keeps its frame small and calls the engine's PublishAt itself (see load).
func (d *load) Run(ctx context.Context, io sim.IO) error {
	start := d.setUp(io)
	for ctx.Err() == nil { // checked each time round: a device behind its schedule never sleeps
		due, ok := pace.Due(d.pacer, start, d.sent.Load())
		if !ok {
			io.SetState("done")
			<-ctx.Done() // its schedule is over
			return nil
		}
		if time.Until(due) > 0 && io.SleepUntil(ctx, due) != nil {
			return nil // the run is over
		}
		_ = io.PublishAt(ctx, due, d.topic, d.payload, d.qos, false) // failures are the engine's to count
		d.sent.Add(1)
	}
	return nil
}

// setUp readies the device to send and returns when its schedule starts.
func (d *load) setUp(io sim.IO) time.Time {
	// Devices built together would otherwise all send at the same instant: spread their
	// schedules over one interval, from the device's own seeded random source.
	start := time.Now()
	if nb := time.Unix(0, d.notBefore); nb.After(start) {
		start = nb
	}
	start = start.Add(time.Duration(io.Rand().Float64() * d.first * float64(time.Second)))
	d.start.Store(start.UnixNano())
	io.SetState("sending")
	return start
}

// SinkParams are the filters a sink listens to. "{prefix}" expands to the home's prefix.
type SinkParams struct {
	Subscribe []string `yaml:"subscribe"`
}

func sinkKind() sim.Kind {
	return sim.NewKind("sink: a backend that subscribes (shared subscriptions too) and takes everything, for end-to-end measurement",
		func() SinkParams { return SinkParams{Subscribe: []string{"{prefix}/#"}} }, buildSink)
}

func buildSink(cfg sim.DeviceConfig, p SinkParams) (sim.Device, error) {
	if len(p.Subscribe) == 0 {
		return nil, &sim.ParamError{Field: "subscribe", Err: fmt.Errorf("a sink needs at least one filter")}
	}
	d := &sink{cfg: cfg}
	for i, f := range p.Subscribe {
		f = strings.ReplaceAll(f, "{prefix}", cfg.Prefix)
		if err := topic.ValidFilter(f); err != nil {
			return nil, &sim.ParamError{Field: "subscribe", Err: fmt.Errorf("[%d] %q: %w", i, f, err)}
		}
		d.filters = append(d.filters, f)
	}
	return d, nil
}

// sink subscribes and drains its inbox; the engine measures what arrives. It is a
// sim.Discarder: the engine need not queue anything for it.
type sink struct {
	cfg     sim.DeviceConfig
	filters []string
}

// DiscardsInbox implements sim.Discarder.
func (*sink) DiscardsInbox() {}

var _ sim.Discarder = (*sink)(nil)

func (d *sink) Run(ctx context.Context, io sim.IO) error {
	if err := subscribe(ctx, io, d.cfg.QoS, d.filters...); err != nil {
		return err
	}
	io.SetState("listening")
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-io.Inbox():
			if !ok {
				return nil
			}
		}
	}
}
