package runner

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/alarm"
	"github.com/fleetsim/fleetsim/sim/link"
)

// Run runs the scenario until its duration passes or ctx is cancelled and returns what
// happened. A run cut short by ctx is not an error: the summary says it was interrupted.
// Devices that fail are reported in the summary and make Run return an error at the end;
// the other devices keep running. The error otherwise follows the verdict (Summary.judge).
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	r := &run{cfg: cfg.withDefaults()}
	defer r.close()
	if err := r.connect(ctx); err != nil {
		return nil, err
	}
	r.clock = r.syncClock(ctx, r.clockBudget())
	if err := r.waitStart(ctx); err != nil {
		return nil, err
	}
	if err := r.build(ctx); err != nil {
		return nil, err
	}
	r.start()
	r.wait()
	r.stop()
	return r.result(ctx.Err() != nil)
}

// run is one run of a scenario, from its first connection to its summary. Its parts in
// order: connect (links and connections), build (the engine and the devices), start (a
// goroutine per device, and the run's own), wait (for the end), stop (the devices, then
// what is in flight), result (the summary and the verdict), close (everything, once).
//
// A run has the two nested contexts of DESIGN.md §8 (k6's): when devCtx ends, devices stop
// starting new work; publishes already handed over have until flight ends, a grace period
// later, to complete.
type run struct {
	cfg Config

	lay   layout
	links []*link.Link
	held  map[link.Profile]*linkHeld // what the devices on each link profile waited for it
	watch *connWatch
	conns []mqttConn

	eng      *engine
	devices  []*port
	gen      Generator
	failures *failures
	dropped  int64 // the embedded broker's drops before the run (Config.BrokerDropped)

	devCtx       context.Context
	stopDevices  context.CancelFunc
	flight       context.Context
	cutFlight    context.CancelFunc
	devicesDone  chan struct{} // closed when every device's goroutine has returned
	watchersDone sync.WaitGroup

	dialed, started, stopped time.Time
	late                     time.Duration // how late the devices started for Config.StartAt

	clock     *ClockEstimate     // a shard's clock against shard 1 (clock.go)
	clockStop context.CancelFunc // ends shard 1's answering of the others' pings
	clockDone sync.WaitGroup
}

// withDefaults fills in what the caller left unset.
func (c Config) withDefaults() Config {
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.Hard == nil {
		c.Hard = context.Background()
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 10 * time.Second
	}
	switch {
	case c.WakeBatch == 0:
		c.WakeBatch = DefaultWakeBatch
	case c.WakeBatch < 0:
		c.WakeBatch = 0
	}
	return c
}

// connect makes the shaped links and opens the connections over them.
func (r *run) connect(ctx context.Context) error {
	s := r.cfg.Scenario
	if err := CheckShard(s, r.cfg.Shard); err != nil {
		return err
	}
	r.lay = planLayout(s, r.cfg.Shard)
	r.links = makeLinks(s, r.cfg.Shard, r.lay, r.cfg.Metrics)
	r.watch = newConnWatch(len(r.lay.conns))
	if err := r.cfg.checkTransport(); err != nil {
		return err
	}
	r.dialed = time.Now()
	r.cfg.Metrics.Transport.WithLabelValues(r.cfg.client(), r.cfg.protocol()).Set(1)
	conns, err := dialAll(ctx, r.cfg, r.lay.conns, r.links, r.watch)
	r.conns = conns
	return err
}

// build makes the engine the devices share and the devices, each on its connection. The
// simulated day starts now, once every connection is up, however long that took.
func (r *run) build(ctx context.Context) error {
	s := r.cfg.Scenario
	r.started = time.Now()
	if at := r.cfg.StartAt; !at.IsZero() {
		r.late = max(0, r.started.Sub(at.Add(-StartLead)))
		if at.After(r.started) {
			r.started = at // the schedules' start: the devices start StartLead ahead of it
		}
	}
	r.flight, r.cutFlight = context.WithCancel(r.cfg.Hard)
	if s.Duration > 0 {
		r.devCtx, r.stopDevices = context.WithDeadline(ctx, r.started.Add(s.Duration))
	} else {
		r.devCtx, r.stopDevices = context.WithCancel(ctx)
	}
	alarms, err := alarm.New(s.DeviceCount(), r.cfg.WakeBatch)
	if err != nil {
		return err
	}
	con := &console{w: r.cfg.Console, debug: r.cfg.Debug}
	meas := newMeasurement()
	if sh := r.cfg.Shard; !sh.Whole() {
		meas.shard, meas.shards = uint32(sh.Index), uint32(sh.Count)
	}
	meas.skew = int64(r.cfg.ClockSkew)
	if c := r.clock; c != nil && c.Measured {
		meas.skew += int64(c.Offset) // stamp and read in shard 1's time
	}
	r.eng = &engine{meas: meas, console: con, flight: r.flight, workers: newWorkers(), alarm: alarms, devCtx: r.devCtx, observer: r.cfg.Observer}
	r.eng.wakeBatch = r.cfg.WakeBatch
	if s.Duration > 0 {
		r.eng.stopAt = r.started.Add(s.Duration)
	}
	r.failures = &failures{con: con}
	r.gen = startGenerator()
	if r.cfg.BrokerDropped != nil {
		r.dropped = r.cfg.BrokerDropped()
	}
	clock := sim.Clock{WallStart: r.started, Start: s.Start, Day: s.Day}
	if r.devices, err = build(r.cfg, clock, r.eng); err != nil {
		return err
	}
	r.held = map[link.Profile]*linkHeld{}
	ports := shapedConns(r.conns, r.links, r.held)
	for i, d := range r.devices {
		d.conn = ports[r.lay.devConn[i]]
	}
	withProps(r.cfg, r.devices, r.conns, r.lay.devConn)
	registerSchedules(r.cfg.Metrics, r.devices)
	return nil
}

// start runs a goroutine per device, and the run's own: one that sees them all end, the
// progress line and the sampler of publishes in flight, which end with devCtx.
func (r *run) start() {
	r.gen.StartingStack = startingStack()
	r.gen.WakeBatch = r.cfg.WakeBatch
	var wg sync.WaitGroup
	for i, d := range r.devices {
		r.cfg.Metrics.Devices.WithLabelValues(d.km.kind).Inc()
		wg.Add(1)
		go r.failures.run(r.devCtx, d, &wg, r.cfg.Metrics)
		if i%startBatch == startBatch-1 {
			// Let the devices started so far run up to their first wait before starting
			// more: a million runnable goroutines at once would queue the ones the alarm
			// wakes behind them, for seconds.
			runtime.Gosched()
		}
	}
	r.devicesDone = make(chan struct{})
	go func() { wg.Wait(); close(r.devicesDone) }()
	if r.cfg.Progress != nil {
		r.watchersDone.Go(func() { reportProgress(r.devCtx, r.cfg, r.started, r.devices, r.conns, r.eng.meas) })
	}
	r.watchersDone.Go(func() { r.gen.MaxInFlight = sampleMax(r.devCtx, &r.eng.inFlight) })
}

// wait returns when the run's time is up, when it is interrupted, or when no device is left
// running (all stopped with errors, or finished their work).
func (r *run) wait() {
	select {
	case <-r.devCtx.Done():
	case <-r.devicesDone:
	}
}

// stop tells the devices to stop and waits for them, then gives what is in flight until the
// grace period ends (or Config.Hard) to complete and arrive.
func (r *run) stop() {
	r.stopDevices()
	r.eng.alarm.Close(r.devCtx.Err()) // wakes the sleeping devices: the run is over
	r.stopped = time.Now()
	grace := time.AfterFunc(r.cfg.Grace, r.cutFlight)
	defer grace.Stop()
	<-r.devicesDone
	r.eng.workers.close() // no device is left to publish
	r.watchersDone.Wait()
	drain(r.flight, r.devices, &r.eng.inFlight)
	r.cutFlight()
	abandonFlights(r.conns, r.flight.Err())
}

// abandonFlights ends the wait for the pipelined publishes still in flight on conns (see
// port.sendPipelined) with err: they fail now, as a Publish cut short by the end of the
// grace period does, before the run's accounting is settled.
func abandonFlights(conns []mqttConn, err error) {
	for _, c := range conns {
		if a, ok := c.(interface{ Abandon(error) }); ok {
			a.Abandon(err)
		}
	}
}

// result settles the run's accounting into its summary and judges it.
func (r *run) result(interrupted bool) (*Summary, error) {
	sum := summarise(r.cfg.Scenario, r.cfg.Conn.Broker, r.started, r.devices)
	sum.Elapsed = r.stopped.Sub(r.started)
	sum.Client, sum.Protocol = r.cfg.client(), r.cfg.protocol()
	sum.Interrupted = interrupted
	sched := scheduleAt(r.devices, r.stopped, true)
	if r.cfg.BrokerDropped != nil {
		r.gen.BrokerDropped = r.cfg.BrokerDropped() - r.dropped
	}
	sum.Connections = r.watch.summary(r.stopped)
	troubled := sum.Connections.Lost > 0 || slices.ContainsFunc(sum.Kinds, func(k KindSummary) bool { return k.Failed > 0 })
	sum.Measured = summariseMeasurement(r.eng.meas, r.gen, sum.Elapsed, r.devices, sched, troubled)
	sum.Links = summariseLinks(r.links, time.Since(r.dialed), r.held, sched)
	sum.Errors = r.failures.list()
	sum.Sharding = ShardInfo{Shard: r.cfg.Shard, RunID: r.cfg.RunID, StartAt: r.cfg.StartAt}
	sum.Sharding.StartLate = r.late
	if r.clock != nil {
		sum.Clocks = []ClockEstimate{*r.clock}
	}
	sum.Portable = portableOf(r.eng.meas, r.cfg.Shard.Count > 0)
	sum.CheckThresholds(r.cfg.Thresholds)
	return sum, sum.judge(r.cfg.AllowGeneratorLimit)
}

// close releases what the run holds, whatever part it reached: the contexts, the alarm, then
// the connections, then the links under them.
func (r *run) close() {
	if r.stopDevices != nil {
		r.stopDevices()
		r.cutFlight()
	}
	if r.eng != nil {
		r.eng.alarm.Close(nil)
	}
	r.stopClock()
	closeAll(r.conns)
	closeLinks(r.links)
}
