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
	// Grace is how long a stopping run waits for publishes in flight to complete and for
	// messages on their way to arrive before it counts what is missing as lost (default
	// DefaultGrace). A second interrupt (cancelling Hard) cuts it short.
	Grace time.Duration
	// Hard, if set, cancels the grace period: the run then ends at once.
	Hard context.Context
	// Thresholds are checked at the end (Summary.Thresholds); a crossed one makes Run
	// return ErrThresholds.
	Thresholds []measure.Threshold
}

// ErrThresholds is returned (wrapped) by Run when a threshold was crossed.
var ErrThresholds = errors.New("thresholds crossed")

// DefaultGrace is the default Config.Grace.
const DefaultGrace = 5 * time.Second

// quietFor is how long deliveries must stay still, once nothing is in flight, for the
// drain at the end of a run to stop before its grace period is over.
const quietFor = 300 * time.Millisecond

// maxDialers bounds concurrent connection attempts, so a large per-device fleet does not
// open thousands of sockets at the same instant.
const maxDialers = 64

// device is one built device and the port it talks through.
type device struct {
	dev  sim.Device
	kind string
	port *port
}

// Run runs the scenario until its duration passes or ctx is cancelled and returns what
// happened. A run cut short by ctx is not an error: the summary says it was interrupted.
// Devices that fail are reported in the summary and make Run return an error at the end;
// the other devices keep running.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	s := cfg.Scenario
	links := makeLinks(s, cfg.Metrics)
	defer closeLinks(links) // after the connections over them
	conns, err := dialAll(ctx, cfg, connectionCount(s), links)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	// The simulated day starts once every connection is up, however long that took.
	started := time.Now()
	clock := sim.Clock{WallStart: started, Start: s.Start, Day: s.Day}
	con := &console{w: cfg.Console, debug: cfg.Debug}
	// Publishes in flight get the grace period to finish after the devices are told to
	// stop (k6's two contexts: stop new work, then cut work in flight).
	hard := cfg.Hard
	if hard == nil {
		hard = context.Background()
	}
	flight, cutFlight := context.WithCancel(hard)
	defer cutFlight()
	meas := newMeasurement()
	gen := startGenerator()
	var inFlight atomic.Int64
	devices, err := build(cfg, clock, con, meas)
	if err != nil {
		return nil, err
	}
	for _, d := range devices {
		d.port.flight = flight
		d.port.inFlight = &inFlight
	}
	for i, d := range devices {
		d.port.conn = conns[connIndex(s, i, d.port.home)]
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	if s.Duration > 0 {
		runCtx, stop = context.WithTimeout(runCtx, s.Duration)
		defer stop()
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		devErrs []string
	)
	for _, d := range devices {
		cfg.Metrics.Devices.WithLabelValues(d.kind).Inc()
		wg.Go(func() {
			defer cfg.Metrics.Devices.WithLabelValues(d.kind).Dec()
			if err := d.dev.Run(runCtx, d.port); err != nil && runCtx.Err() == nil {
				msg := fmt.Sprintf("home %d %s: %v", d.port.home, d.port.id, err)
				con.Println("device stopped: " + msg)
				mu.Lock()
				devErrs = append(devErrs, msg)
				mu.Unlock()
			}
		})
	}
	// The run ends when its time is up, when it is interrupted, or when no device is
	// left running (all stopped with errors, or finished their work).
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if cfg.Progress != nil {
			reportProgress(runCtx, cfg, started, devices, conns)
		}
	}()
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		gen.MaxInFlight = sampleMax(runCtx, &inFlight)
	}()
	select {
	case <-runCtx.Done():
	case <-allDone:
	}
	stop()
	stopped := time.Now()
	grace := cfg.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	graceTimer := time.AfterFunc(grace, cutFlight)
	defer graceTimer.Stop()
	<-allDone
	<-progressDone
	<-samplerDone
	drain(flight, devices, &inFlight)
	cutFlight()

	sum := summarise(s, cfg.Conn.Broker, started, devices)
	sum.Elapsed = stopped.Sub(started)
	sum.Measured = summariseMeasurement(meas, gen, sum.Elapsed, devices)
	sum.Links = summariseLinks(s, cfg.Metrics.Links.Totals(), sum.Elapsed)
	sum.Interrupted = ctx.Err() != nil
	sum.Errors = devErrs
	passed := sum.CheckThresholds(cfg.Thresholds)
	if len(devErrs) > 0 {
		return sum, fmt.Errorf("%d device(s) stopped with errors; first: %s", len(devErrs), devErrs[0])
	}
	if !passed {
		failed := 0
		for _, t := range sum.Thresholds {
			if !t.OK {
				failed++
			}
		}
		return sum, fmt.Errorf("%w: %d of %d", ErrThresholds, failed, len(sum.Thresholds))
	}
	return sum, nil
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

// drain waits, until ctx ends, for the publishes in flight to complete and then for
// deliveries to stay still for quietFor: the messages on their way when the devices
// stopped get their chance to arrive before what is missing counts as lost.
func drain(ctx context.Context, devices []*device, inFlight *atomic.Int64) {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := int64(-1), time.Now()
	for {
		var in int64
		for _, d := range devices {
			in += d.port.stats.in.Load() + d.port.stats.dropped.Load()
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
func build(cfg Config, clock sim.Clock, con *console, meas *measurement) ([]*device, error) {
	s := cfg.Scenario
	kindMetrics := map[string]*metrics.Kind{}
	devices := make([]*device, 0, s.Homes*s.DevicesPerHome())
	for home := 1; home <= s.Homes; home++ {
		shared := sim.NewShared()
		for gi := range s.Groups {
			g := &s.Groups[gi]
			kind, ok := cfg.Kinds[g.Kind]
			if !ok {
				return nil, fmt.Errorf("%s:%d: unknown device kind %q", s.File, g.Line, g.Kind)
			}
			km := kindMetrics[g.Kind]
			if km == nil {
				km = cfg.Metrics.For(g.Kind)
				kindMetrics[g.Kind] = km
			}
			kmeas := meas.kind(g.Kind, km, cfg.Metrics)
			for n := 1; n <= g.Count; n++ {
				dc := s.DeviceConfig(g, home, n)
				dc.Clock = clock
				dc.Shared = shared
				dev, err := kind.Build(dc, g.Params)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: home %d %s: %w", s.File, g.Line, home, dc.ID, err)
				}
				_, discard := dev.(sim.Discarder)
				devices = append(devices, &device{dev: dev, kind: g.Kind, port: &port{
					discard: discard,
					home:    home,
					id:      dc.ID,
					limit:   rate.NewLimiter(rate.Limit(g.MaxRate), max(1, int(math.Ceil(g.MaxRate)))),
					inbox:   make(chan sim.Message, inboxSize),
					rng:     mrand.New(mrand.NewPCG(s.Seed, deviceSeed(home, dc.ID))),
					metrics: km,
					console: con,
					meas:    meas,
					km:      kmeas,
					rcv:     meas.receiverID(),
					streams: map[string]*outStream{},
				}})
			}
		}
	}
	return devices, nil
}

// connectionCount is how many connections the scenario's connection mode needs.
func connectionCount(s *scenario.Scenario) int {
	switch s.Connections.Mode {
	case scenario.PerDevice:
		return s.Homes * s.DevicesPerHome()
	case scenario.Pool:
		return min(s.Connections.PoolSize, s.Homes*s.DevicesPerHome())
	default:
		return s.Homes
	}
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

// makeLinks gives each device of a group with a link its own shaped link, indexed like
// the per-device connections (the loader allows links only with per-device connections).
// Devices without a link get nil.
func makeLinks(s *scenario.Scenario, m *metrics.Metrics) []*link.Link {
	var links []*link.Link
	for home := 1; home <= s.Homes; home++ {
		for gi := range s.Groups {
			g := &s.Groups[gi]
			for n := 1; n <= g.Count; n++ {
				if g.Link == nil {
					links = append(links, nil)
					continue
				}
				// Its own stream, apart from the device's, for jitter and outages.
				rng := mrand.New(mrand.NewPCG(s.Seed, deviceSeed(home, g.DeviceID(n)+"/link")))
				l := link.NewLink(*g.Link, rng)
				m.Links.Add(g.Link.Name, l.Stats)
				links = append(links, l)
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

// dialAll opens n connections, at most maxDialers at a time. If any fails, it closes the
// ones that opened and returns the first error.
func dialAll(ctx context.Context, cfg Config, n int, links []*link.Link) ([]*mqttconn.Conn, error) {
	runID := make([]byte, 3)
	_, _ = rand.Read(runID)
	prefix := "fleetsim-" + hex.EncodeToString(runID)

	opts := cfg.Conn
	m := cfg.Metrics
	opts.OnChange = func(up bool, lost error) {
		if up {
			m.Connections.Inc()
			return
		}
		m.Connections.Dec()
		if lost != nil {
			m.ConnectionsLost.Inc()
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conns := make([]*mqttconn.Conn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, maxDialers)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			o := opts
			if i < len(links) && links[i] != nil {
				o.NetDial = links[i].Dial
			}
			c, err := mqttconn.Dial(ctx, o, fmt.Sprintf("%s-%d", prefix, i+1))
			if err != nil {
				m.ConnectAttempts.WithLabelValues("error").Inc()
				errs[i] = err
				cancel() // no point opening the rest
				return
			}
			m.ConnectAttempts.WithLabelValues("ok").Inc()
			conns[i] = c
		})
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
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

func closeAll(conns []*mqttconn.Conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		if c != nil {
			wg.Go(c.Close)
		}
	}
	wg.Wait()
}
