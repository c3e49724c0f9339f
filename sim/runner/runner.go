// Package runner runs a scenario: it builds every device, shares MQTT connections among
// them as the scenario says, runs one goroutine per device under one owner, and stops them
// all when the run's time is up or its context is cancelled, leaving no goroutine behind.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/link"
	"github.com/fleetsim/fleetsim/sim/measure"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// Config is everything a run needs. Scenario, Kinds, Conn and Metrics are required.
type Config struct {
	Scenario *scenario.Scenario
	Kinds    map[string]sim.Kind
	Conn     mqttconn.Options // Broker must be set (the embedded broker's URL if embedded)
	Metrics  *metrics.Metrics
	Console  io.Writer // device narration; nil for none
	Debug    io.Writer // rejected payloads and similar detail; nil for none
	// Progress, if set, gets one status line every ProgressEvery (default 10s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// ProgressInPlace rewrites one progress line in place, for a terminal.
	ProgressInPlace bool
	// Grace is how long a stopping run waits for publishes in flight to complete and for
	// messages on their way to arrive before it counts what is missing as lost (default
	// DefaultGrace). A second interrupt (cancelling Hard) cuts it short.
	Grace time.Duration
	// Hard, if set, cancels the grace period: the run then ends at once.
	Hard context.Context
	// Thresholds are checked at the end (Summary.Thresholds); a crossed one makes Run
	// return ErrThresholds.
	Thresholds []measure.Threshold
	// BrokerDropped, if set, reads how many messages the embedded broker has dropped so far
	// for subscribers that did not take them in time. The embedded broker runs inside
	// fleetsim, and its subscribers are mostly fleetsim's own receivers: what it drops is
	// lost on the generator's side of the wire.
	BrokerDropped func() int64
	// AllowGeneratorLimit lets a run whose generator was the limit (it fell behind its
	// schedules, shed load or starved its own receivers) pass on its thresholds alone.
	// Without it such a run's verdict is GeneratorLimited and Run returns
	// ErrGeneratorLimit: it did not measure the broker.
	AllowGeneratorLimit bool
	// Shard, if set, runs only that part of the fleet (see Shard); StartAt, if set, is when
	// the devices start, once the connections are up (shards of one run share it); RunID,
	// if set, names the run in client ids (see RunID; default random).
	Shard   Shard
	StartAt time.Time
	RunID   string
	// ClockSkew is added to this process's clock where it stamps and reads measured
	// messages: a test hook that makes a shard's clock wrong on purpose.
	ClockSkew time.Duration
	// Observer, if set, is told about every device, its states and its subscriptions.
	Observer Observer
	// Client, if set, is the MQTT client every connection uses (scenario.ClientPaho or
	// ClientLean), overriding the scenario's connections.client.
	Client string
	// Protocol, if set, is the MQTT version the connections speak (scenario.Protocol311 or
	// Protocol5, which needs the lean client), overriding the scenario's.
	Protocol string
	// WakeBatch is the slot within which devices due to send are woken together, at the
	// slot's start (sim/alarm): a send goes out up to WakeBatch early, never late on that
	// account, and is measured from when it went out. A fleet sending a few thousand
	// messages a second then wakes once for several of them instead of once for each,
	// which costs less than half the CPU a message. Default DefaultWakeBatch; negative:
	// every device wakes at its own time.
	WakeBatch time.Duration
}

// ErrThresholds is returned (wrapped) by Run when a threshold was crossed.
var ErrThresholds = errors.New("thresholds crossed")

// ErrGeneratorLimit is returned (wrapped) by Run when the generator, not the broker, was the
// limit, unless Config.AllowGeneratorLimit.
var ErrGeneratorLimit = errors.New("the generator was the limit")

// DefaultGrace is the default Config.Grace.
const DefaultGrace = 5 * time.Second

// DefaultWakeBatch is the default Config.WakeBatch. Against mosquitto (QoS 1, 64
// publishers on connections of their own) it cut the CPU a message from ~160 to ~65 µs
// at 3,000 msg/s and from ~50 to ~28 µs at 15,000, where 1 ms did about half as well;
// at 30,000 msg/s, where sends coalesce anyway, from ~33 to ~27 µs.
const DefaultWakeBatch = 2 * time.Millisecond

// quietFor is how long deliveries must stay still, once nothing is in flight, for the
// drain at the end of a run to stop before its grace period is over.
const quietFor = 300 * time.Millisecond

// startBatch is how many devices start between two yields of the starting goroutine.
const startBatch = 256

// maxDialers bounds concurrent connection attempts, so a large per-device fleet does not
// open thousands of sockets at the same instant. They are made by as many long-lived
// goroutines, not a goroutine each: a new one grew its stack in every dial, and reusing
// them cut fleetsim's CPU a connection from 85 to 74 µs (medians of 4 and 5 runs of
// BenchmarkConnectionsLean, 19,900 connections, on 2 shared cores). 16 or 256 of them
// connected no faster than 64 (two runs each).
const maxDialers = 64

// shapedConns returns the connections as the devices ride them: those over a shaped link
// wrapped with the link profile's measure of how long its devices waited for it (made in
// held), the others as they are.
func shapedConns(conns []mqttConn, links []*link.Link, held map[link.Profile]*linkHeld) []connection {
	out := make([]connection, len(conns))
	for i, c := range conns {
		out[i] = c
		if i >= len(links) || links[i] == nil {
			continue
		}
		p := links[i].Profile()
		h := held[p]
		if h == nil {
			h = &linkHeld{wait: measure.NewRecorder()}
			held[p] = h
		}
		out[i] = &linkedConn{connection: c, held: h}
	}
	return out
}

// sampleMax returns the highest value v held at its samples, every 100 ms until ctx ends.
func sampleMax(ctx context.Context, v *atomic.Int64) int64 {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var peak int64
	for {
		peak = max(peak, v.Load())
		select {
		case <-ctx.Done():
			return peak
		case <-t.C:
		}
	}
}

// failures collects the errors of devices that stopped.
type failures struct {
	con  *console
	mu   sync.Mutex
	errs []string
}

// run is a device's goroutine. It keeps only a small frame below the device's own Run: a
// waiting device's stack then stays at the 2 KiB a goroutine starts with, which is what a
// million devices cost (see workers). done's larger frame comes only once Run returns.
func (f *failures) run(ctx context.Context, d *port, wg *sync.WaitGroup, m *metrics.Metrics) {
	f.done(ctx, d, d.dev.Run(ctx, d), m)
	wg.Done()
}

// done records that device d's Run returned err.
//
//go:noinline
func (f *failures) done(ctx context.Context, d *port, err error, m *metrics.Metrics) {
	m.Devices.WithLabelValues(d.km.kind).Dec()
	if err == nil || ctx.Err() != nil {
		return
	}
	msg := fmt.Sprintf("home %d %s: %v", d.home, d.id, err)
	f.con.Println("device stopped: " + msg)
	f.mu.Lock()
	f.errs = append(f.errs, msg)
	f.mu.Unlock()
}

func (f *failures) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.errs)
}

// drain waits, until ctx ends, for the publishes in flight to complete and then for
// deliveries to stay still for quietFor: the messages on their way when the devices
// stopped get their chance to arrive before what is missing counts as lost.
func drain(ctx context.Context, devices []*port, inFlight *atomic.Int64) {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := int64(-1), time.Now()
	for {
		var in int64
		for _, d := range devices {
			in += d.stats.in.Load() + d.stats.dropped.Load()
		}
		if in != last || inFlight.Load() > 0 {
			last, lastChange = in, time.Now()
		} else if time.Since(lastChange) >= quietFor {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// build makes every device of every home and its port.
func build(cfg Config, clock sim.Clock, eng *engine) ([]*port, error) {
	s := cfg.Scenario
	kindMetrics := map[string]*metrics.Kind{}
	devices := make([]*port, 0, s.DeviceCount())
	limits := make([]*rate.Limiter, len(s.Groups)) // each group's rate limit: a template for its ports (port.limited)
	for gi, g := range s.Groups {
		limits[gi] = rate.NewLimiter(rate.Limit(g.MaxRate), max(1, int(math.Ceil(g.MaxRate))))
	}
	for home := 1; home <= s.Homes; home++ {
		if !cfg.Shard.Owns(home) {
			continue
		}
		shared := sim.NewShared()
		for gi := range s.Groups {
			g := &s.Groups[gi]
			if !g.InHome(home) {
				continue
			}
			kind, ok := cfg.Kinds[g.Kind]
			if !ok {
				return nil, fmt.Errorf("%s:%d: unknown device kind %q", s.File, g.Line, g.Kind)
			}
			km := kindMetrics[g.Kind]
			if km == nil {
				km = cfg.Metrics.For(g.Kind)
				kindMetrics[g.Kind] = km
			}
			kmeas := eng.meas.kind(g.Kind, km, cfg.Metrics)
			for n := 1; n <= g.Count; n++ {
				dc := s.DeviceConfig(g, home, n)
				dc.Clock = clock
				dc.Shared = shared
				dev, err := kind.Build(dc, g.Params)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: home %d %s: %w", s.File, g.Line, home, dc.ID, err)
				}
				p := newPort(eng, kmeas, home, dc.ID, limits[gi],
					mrand.New(mrand.NewPCG(s.Seed, deviceSeed(home, dc.ID))))
				p.dev = dev
				if eng.observer != nil {
					eng.observer.DeviceAdded(dc)
				}
				_, p.discard = dev.(sim.Discarder)
				_, p.pipelines = dev.(sim.Pipeliner)
				devices = append(devices, p)
			}
		}
	}
	return devices, nil
}

// connIndex is the connection device i (of home) rides on.
func connIndex(s *scenario.Scenario, i, home int) int {
	switch s.Connections.Mode {
	case scenario.PerDevice:
		return i
	case scenario.Pool:
		return i % s.Connections.PoolSize
	default:
		return home - 1
	}
}

// makeLinks builds the shaped links, indexed like the connections (see connIndex). With
// per-device connections each device gets a link of its own (its group's, or else the
// connections' default: Scenario.DeviceLink); with shared connections (per-home, pool)
// each connection gets a link of the connections' profile, which the devices riding it
// share. A connection without a link gets nil; a run without links gets a nil slice.
func makeLinks(s *scenario.Scenario, sh Shard, lay layout, m *metrics.Metrics) []*link.Link {
	// Each link has its own random stream, apart from the devices', for jitter and outages.
	newLink := func(p *link.Profile, home int, name string) *link.Link {
		l := link.NewLink(*p, mrand.New(mrand.NewPCG(s.Seed, deviceSeed(home, name+"/link"))))
		m.Links.Add(p.Name, l.Stats)
		l.SetWaitObserver(m.Links.Observe(p.Name))
		return l
	}
	var links []*link.Link
	if s.Connections.Mode != scenario.PerDevice {
		if s.Connections.Link == nil {
			return nil
		}
		links = make([]*link.Link, len(lay.conns))
		for i, c := range lay.conns {
			links[i] = newLink(s.Connections.Link, 0, fmt.Sprintf("connection-%d", c+1))
		}
		return links
	}
	for home := 1; home <= s.Homes; home++ {
		if !sh.Owns(home) {
			continue
		}
		for gi := range s.Groups {
			g := &s.Groups[gi]
			if !g.InHome(home) {
				continue
			}
			p := s.DeviceLink(g)
			for n := 1; n <= g.Count; n++ {
				if p == nil {
					links = append(links, nil)
					continue
				}
				links = append(links, newLink(p, home, g.DeviceID(n)))
			}
		}
	}
	if slices.IndexFunc(links, func(l *link.Link) bool { return l != nil }) < 0 {
		return nil
	}
	return links
}

func closeLinks(links []*link.Link) {
	for _, l := range links {
		if l != nil {
			l.Close()
		}
	}
}

// deviceSeed derives a device's own random stream from its identity, so one device's
// sequence does not depend on how many others exist.
func deviceSeed(home int, id string) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", home, id)
	return h.Sum64()
}

// dialAll opens the connections with global indexes ids (see layout), at most maxDialers
// at a time. If any fails, it closes the ones that opened and returns the first error.
func dialAll(ctx context.Context, cfg Config, ids []int, links []*link.Link, watch *connWatch) ([]mqttConn, error) {
	runID := cfg.RunID
	if runID == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		runID = hex.EncodeToString(b)
	}
	prefix := "fleetsim-" + runID
	n := len(ids)

	opts, m, c := watchedOptions(cfg, watch), cfg.Metrics, cfg.Scenario.Connections

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conns := make([]mqttConn, n)
	errs := make([]error, n)
	work := make(chan func()) // the dials, for maxDialers goroutines
	// A ramp up: at most ConnectRate new connections a second.
	ramp := rate.NewLimiter(rate.Inf, 1)
	if c.ConnectRate > 0 {
		ramp = rate.NewLimiter(rate.Limit(c.ConnectRate), 1)
	}
	var wg sync.WaitGroup
	for range min(n, maxDialers) {
		wg.Go(func() {
			for dial := range work {
				dial()
			}
		})
	}
	for i := range n {
		if ramp.Wait(ctx) != nil {
			errs[i] = ctx.Err()
			break
		}
		work <- func() {
			o := opts
			var local net.Addr
			if srcs := c.SourceAddresses; len(srcs) > 0 {
				local = &net.TCPAddr{IP: srcs[ids[i]%len(srcs)].AsSlice()}
				o.NetDial = (&net.Dialer{LocalAddr: local}).DialContext
			}
			if i < len(links) && links[i] != nil {
				links[i].SetLocalAddr(local)
				o.NetDial = links[i].Dial
			}
			c, err := dialConn(ctx, cfg, o, fmt.Sprintf("%s-%d", prefix, ids[i]+1))
			if err != nil {
				m.ConnectAttempts.WithLabelValues("error").Inc()
				errs[i] = err
				cancel() // no point opening the rest
				return
			}
			m.ConnectAttempts.WithLabelValues("ok").Inc()
			conns[i] = c
		}
	}
	close(work)
	wg.Wait()
	if err := firstError(errs); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

// watchedOptions are the run's connection options, with the scenario's session and the
// callbacks that count connects, drops and attempts in watch and the metrics.
func watchedOptions(cfg Config, watch *connWatch) mqttconn.Options {
	opts := cfg.Conn
	m := cfg.Metrics
	opts.OnChange = func(up bool, lost error) {
		watch.change(up, lost != nil, time.Now())
		if up {
			m.Connections.Inc()
			return
		}
		m.Connections.Dec()
		if lost != nil {
			m.ConnectionsLost.Inc()
		}
		if malformed(lost) {
			m.Malformed.Inc()
		}
	}
	opts.OnReconnectAttempt = func(err error) {
		if err != nil {
			m.ConnectAttempts.WithLabelValues("error").Inc()
			return
		}
		m.ConnectAttempts.WithLabelValues("ok").Inc()
	}
	opts.Persistent = cfg.Scenario.Connections.Persistent
	return opts
}

// firstError prefers a real cause over the cancellations it triggered in other dialers.
func firstError(errs []error) error {
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if !errors.Is(err, context.Canceled) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

func closeAll(conns []mqttConn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		if c != nil {
			wg.Go(c.Close)
		}
	}
	wg.Wait()
}
