package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/alarm"
	"github.com/fleetsim/fleetsim/sim/lean"
	"github.com/fleetsim/fleetsim/sim/measure"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// inboxSize is how many messages a device may have waiting before new ones are dropped.
const inboxSize = 64

// maxSpare bounds the stamped payloads kept for reuse (stampBufs), so that a large payload
// once sent is not held for good.
const maxSpare = 4 << 10

// connection is what a port needs from its MQTT connection; *mqttconn.Conn implements it.
type connection interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error
	Subscribe(ctx context.Context, filter string, qos byte, r mqttconn.Receiver) (byte, error)
}

// engine is what every port of a run shares.
type engine struct {
	meas      *measurement
	console   *console
	flight    context.Context // bounds publishes in flight; outlives the devices' ctx by the grace period
	inFlight  atomic.Int64    // publishes in flight
	workers   *workers        // run the publishes
	alarm     *alarm.Alarm    // wakes sleeping devices
	devCtx    context.Context // the devices' ctx: a sleep on it rides the alarm
	stopAt    time.Time       // when devCtx ends, if the run has a duration
	wakeBatch time.Duration   // the alarm's slot (Config.WakeBatch)
	observer  Observer        // nil: none (Config.Observer)
}

// port is one device: the device itself and its sim.IO, which is its share of a
// connection, its rate limit, its inbox and its counters.
//
// A large fleet is a million of them, so a port holds only what is its own; what the
// devices of a run or of a kind share is behind eng and km.
type port struct {
	dev       sim.Device
	eng       *engine
	km        *kindMeasure // the kind's name, metrics and measurement
	home      int
	id        string
	conn      connection
	limit     *rate.Limiter // the group's shared template until ownLimit (see limited)
	inbox     chan sim.Message
	rng       *rand.Rand
	stats     deviceStats
	rcv       atomic.Uint32 // receiver id in stream keys (a shared subscription's group's, see Subscribe)
	discard   bool          // the device is a sim.Discarder: count and measure, never queue
	pipelines bool          // the device is a sim.Pipeliner: see sendPipelined
	ownLimit  bool          // limit is the device's own, no longer the group's template (see limited)

	first       *outStream            // the stream of the first topic it published a measured message on
	streams     map[string]*outStream // the streams of its other topics (most devices have none)
	lastPublish int64                 // nanotime when the device's previous publish returned (its goroutine only)
	// A device waits for one thing at a time: the outcome of its publish from a worker, or
	// its wake-up from the alarm. Whoever brings it sets err and then marks done (Wake).
	// A WaitGroup and an error cost 32 bytes in the port, where a channel cost 112 beside it.
	done sync.WaitGroup
	err  error
}

// newPort returns the port of a device of kind km, home and id, sharing eng. limit is the
// device's group's rate limit, a template shared by the group's devices: a device gets a
// limiter of its own only when it publishes often enough to meet it (see limited).
func newPort(eng *engine, km *kindMeasure, home int, id string, limit *rate.Limiter, rng *rand.Rand) *port {
	p := &port{
		eng: eng, km: km, home: home, id: id, limit: limit, rng: rng,
		// Room for a first state and one change, so that recording them does not
		// allocate on the device's goroutine (see workers).
		stats: deviceStats{states: make([]string, 0, 2)},
	}
	p.rcv.Store(eng.meas.receiverID())
	return p
}

// deviceStats are one device's counters for the summary. The counters are written by the
// device's goroutine and the connection's delivery goroutine, hence atomics.
type deviceStats struct {
	out, outBytes, in, inBytes, rejected, dropped, failed atomic.Int64
	scheduled                                             atomic.Int64 // sends made on its schedule (PublishAt)

	mu     sync.Mutex
	states []string // every state the device entered, in order
}

func (p *port) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	return p.PublishAt(ctx, time.Time{}, topic, payload, qos, retained)
}

// pubReq is one publish handed from a device's goroutine to a worker; the device's
// goroutine waits for the answer (port.wait).
type pubReq struct {
	p        *port
	ctx      context.Context // the device's: bounds the wait for the rate limit
	due      time.Time       // zero for an unscheduled publish
	prevDone int64           // nanotime when the device's previous publish returned
	topic    string
	payload  []byte
	qos      byte
	retained bool
}

func (r *pubReq) run() { r.p.Wake(r.p.send(r)) }

// Wake ends the device's wait (see port.done) with err: a worker's answer to its publish,
// or the alarm's (alarm.Waker).
func (p *port) Wake(err error) {
	p.err = err
	p.done.Done()
}

// wait waits for what the device's goroutine asked for (after p.done.Add(1)) and returns
// its outcome.
func (p *port) wait() error {
	p.done.Wait()
	err := p.err
	p.err = nil
	return err
}

// PublishAt waits for the device's rate limit, then has a worker send the message (see
// workers); a zero due is an unscheduled publish. The device's ctx only bounds the wait for
// the rate limit: once a publish is handed over it is given until the run's grace period
// ends to complete, so that stopping a run does not turn the publishes in flight into
// losses. This runs on the device's goroutine, so it keeps a small frame and calls little.
//
// A device that publishes often (its previous publish returned less than hotGap ago) sends on its own
// goroutine instead: the hand-over costs two goroutine switches a message (about 0.6 µs,
// 15 % of the top QoS 0 rate end to end), and a few busy devices' larger stacks cost nothing.
//
// A hot device more than LateAfter behind its schedule gives way before each send: it
// yields (runtime.Gosched) so that the goroutines waiting to run go first. It does not
// wait for its schedule, so without that it is always runnable, and the run's receivers
// (paho's reader, router and handler goroutines, each stage readied by the one before)
// only run in the gaps between the publishers' turns: they starve, their messages pile up
// in the broker, which drops QoS 0 ones past its queue, and past the generator's limit
// delivered throughput falls as offered load rises. The device still sends every message,
// measured from its due time. Below LateAfter it catches up at full speed, so a rate the
// generator sustains (few sends late) is not slowed.
func (p *port) PublishAt(ctx context.Context, due time.Time, topic string, payload []byte, qos byte, retained bool) error {
	prev := p.lastPublish
	if now := nanotime(); now-prev < int64(hotGap) {
		if !due.IsZero() && time.Duration(now)-due.Sub(processStart) > LateAfter {
			runtime.Gosched() // late already: give way (see above)
		}
		r := pubReq{p: p, ctx: ctx, due: due, prevDone: prev, topic: topic, payload: payload, qos: qos, retained: retained}
		err := p.send(&r)
		p.lastPublish = nanotime()
		return err
	}
	// The request goes to a worker by pointer: a copy into the channel took more stack
	// than a device's goroutine can spare. It comes from a pool rather than the port, so
	// that the many devices not publishing right now do not hold one each.
	r := pubReqs.Get().(*pubReq)
	*r = pubReq{p: p, ctx: ctx, due: due, prevDone: prev, topic: topic, payload: payload, qos: qos, retained: retained}
	p.done.Add(1)
	select {
	case p.eng.workers.reqs <- r:
	default:
		p.eng.workers.start(r)
	}
	err := p.wait()
	*r = pubReq{} // the device's buffer and context are its own again
	pubReqs.Put(r)
	p.lastPublish = nanotime()
	return err
}

// pubReqs are the requests of the publishes in a worker's hands.
var pubReqs = sync.Pool{New: func() any { return new(pubReq) }}

// SleepUntil implements sim.IO. A sleep on the run's own context is one entry in the
// alarm's heap, which wakes the port (Wake), up to the alarm's slot early (Config.WakeBatch;
// PublishAt measures an early send from when it went out); any other context gets a timer
// of its own. A sleep until the run's end or later is never woken early: a send due after
// the run is not made.
func (p *port) SleepUntil(ctx context.Context, t time.Time) error {
	if ctx != p.eng.devCtx || p.eng.alarm == nil {
		return sim.TimerSleep(ctx, t)
	}
	if stop := p.eng.stopAt; !stop.IsZero() && !t.Before(stop) {
		t = t.Add(p.eng.wakeBatch) // its slot then starts after t
	}
	if p.eng.alarm.Woken(t) {
		return nil // its slot has begun
	}
	p.done.Add(1)
	if err := p.eng.alarm.Add(t, p); err != nil {
		p.done.Add(-1)
		return err
	}
	return p.wait()
}

// hotGap is how soon after its previous publish a device's next one counts as frequent.
const hotGap = 10 * time.Millisecond

// nanotime is a monotonic clock reading in nanoseconds, cheap enough for a device's small
// stack.
func nanotime() int64 { return int64(time.Since(processStart)) }

var processStart = time.Now()

// stream returns the device's publisher stream on topic, making it on first use; nil when
// the run has too many to measure. One publish at a time calls it.
func (p *port) stream(topic string) *outStream {
	if p.first != nil && p.first.topic == topic {
		return p.first
	}
	if st := p.streams[topic]; st != nil {
		return st
	}
	st := p.eng.meas.newStream(topic)
	if st == nil {
		return nil
	}
	if p.first == nil {
		p.first = st
		return st
	}
	if p.streams == nil {
		p.streams = map[string]*outStream{}
	}
	p.streams[topic] = st
	return st
}

// stampBufs are buffers for stamped payloads, boxed so that a Put does not allocate. A
// publish whose client is done with its payload (QoS 0, once written) puts it back for the
// next; any other puts back an empty box.
var stampBufs = sync.Pool{New: func() any { return new([]byte) }}

// send waits for the device's rate limit, stamps the payload's measurement header, sends it
// and counts the outcome. It runs on a worker: even the rate limiter's arithmetic is more
// stack than a device's goroutine can spare.
func (p *port) send(r *pubReq) error {
	if r.qos > 2 {
		return fmt.Errorf("publish %s: QoS %d is not 0, 1 or 2", r.topic, r.qos)
	}
	if err := r.ctx.Err(); err != nil {
		return err // a stopped device sends nothing more, rate limit or not
	}
	start := time.Now() // when it left the rate limiter
	if lim := p.limited(r.prevDone); lim != nil && !lim.AllowN(start, 1) {
		if err := lim.Wait(r.ctx); err != nil {
			return err
		}
		start = time.Now()
	}
	sent := start
	if !r.due.IsZero() {
		// Measured from when it was due, or from when it went out if that was earlier (a
		// device woken early with others, see SleepUntil): never from a time it was not yet
		// sent, which would flatter the broker.
		sent = r.due
		if start.Before(sent) {
			sent = start
		}
		p.recordLag(r.due, r.prevDone, start)
	}
	out, st, buf := p.stamped(r.topic, r.payload, sent)
	p.eng.inFlight.Add(1)
	if pipe := p.pipeline(r.qos); pipe != nil {
		return p.sendPipelined(pipe, r, out, st, buf)
	}
	sendAt := time.Now()
	err := p.conn.Publish(p.eng.flight, r.topic, out, r.qos, r.retained)
	p.eng.inFlight.Add(-1)
	if err != nil {
		if buf != nil {
			stampBufs.Put(buf) // empty: the client may hold out
		}
		return p.failedPublish(r, st, err)
	}
	if buf != nil {
		if r.qos == 0 && cap(out) <= maxSpare {
			// Written, so paho holds it no more. Not at QoS 1 and 2: with a persistent
			// session paho completes a resent publish's token when it writes it again, and
			// keeps the payload in its store until the acknowledgement (seen as a race
			// under -race); the box goes back empty.
			*buf = out
		}
		stampBufs.Put(buf)
	}
	p.published(r.qos, len(r.payload), time.Since(sendAt))
	return nil
}

// failedPublish counts a publish that failed with err and returns err with its topic. When
// nothing went out (or the broker refused it), nothing can arrive: the seq is given back,
// so that the failure counts as one and not also as a loss. Only the device's goroutine
// stamps its streams, and it is still in this publish, so the seq is still the last.
func (p *port) failedPublish(r *pubReq, st *outStream, err error) error {
	if st != nil && (errors.Is(err, mqttconn.ErrNotSent) || refused(err)) {
		st.last.Add(^uint64(0))
	}
	p.stats.failed.Add(1)
	p.km.metrics.PublishFailures[r.qos].Inc()
	return fmt.Errorf("publish %s: %w", r.topic, err)
}

// pipeliner is a connection that takes a publish without waiting for its outcome, which
// it tells later (*lean.Conn).
type pipeliner interface {
	PublishAsync(ctx context.Context, topic string, payload []byte, qos byte, retained bool, then lean.Outcome) error
	Protocol() byte
}

// pipeline returns the connection a publish at qos may be pipelined on, or nil: the
// device's publishes must be a sim.Pipeliner's, at QoS 1 or 2 (QoS 0 has no outcome to
// wait for), on the lean client, shaped or not, under MQTT 3.1.1. Not under MQTT 5: there
// the broker may refuse a publish, and the refused seq, which nobody will receive, can be
// given back (failedPublish) only while it is the stream's last.
func (p *port) pipeline(qos byte) pipeliner {
	if !p.pipelines || qos == 0 {
		return nil
	}
	c := p.conn
	if lc, ok := c.(*linkedConn); ok {
		c = lc.connection
	}
	if pc, ok := c.(pipeliner); ok && pc.Protocol() == lean.MQTT311 {
		return pc
	}
	return nil
}

// sendPipelined hands a stamped publish (see send) to pipe and returns once it is on its
// way; its outcome is counted when it comes (pending). The wait for room in the
// connection's window, or for a shaped link to take the bytes, is the device's: it is held
// by its connection (recordLag).
func (p *port) sendPipelined(pipe pipeliner, r *pubReq, out []byte, st *outStream, buf *[]byte) error {
	pd := pendings.Get().(*pending)
	*pd = pending{p: p, qos: r.qos, n: len(r.payload), sentAt: nanotime()}
	err := pipe.PublishAsync(p.eng.flight, r.topic, out, r.qos, r.retained, pd)
	if buf != nil {
		if cap(out) <= maxSpare {
			*buf = out // the lean client copied it
		}
		stampBufs.Put(buf)
	}
	if err != nil {
		*pd = pending{}
		pendings.Put(pd)
		p.eng.inFlight.Add(-1)
		return p.failedPublish(r, st, err)
	}
	return nil
}

// pending is a pipelined publish on its way: what counting its outcome needs.
type pending struct {
	p      *port
	qos    byte
	n      int   // payload bytes
	sentAt int64 // nanotime when it was handed over
}

var pendings = sync.Pool{New: func() any { return new(pending) }}

// Outcome implements lean.Outcome: it counts how the publish ended, on the connection's
// goroutine. A failure that comes now was on its way, so its seq stays spent: if it never
// arrives, it is lost too, as a Publish that failed after sending is.
func (pd *pending) Outcome(err error) {
	p := pd.p
	p.eng.inFlight.Add(-1)
	if err != nil {
		p.stats.failed.Add(1)
		p.km.metrics.PublishFailures[pd.qos].Inc()
	} else {
		p.published(pd.qos, pd.n, time.Duration(nanotime()-pd.sentAt))
	}
	*pd = pending{}
	pendings.Put(pd)
}

// limited returns the device's own rate limiter, making it when the device first publishes
// soon enough after its previous publish (which returned at prevDone, nanotime; 0: never)
// to meet it, or nil while it has not. A token bucket of burst b and rate r that loses one
// token a publish is full again (b+1)/r after one: while every publish comes at least that
// long after the one before, the bucket is full at each and a limiter would always allow
// it. So a device that publishes once a minute never holds one (80 bytes, a tenth of a
// waiting device's heap), and one that publishes faster gets a full one, as it would have
// had all along, from the first publish that could be held back.
func (p *port) limited(prevDone int64) *rate.Limiter {
	if p.ownLimit {
		return p.limit
	}
	tmpl := p.limit
	refill := time.Duration(float64(tmpl.Burst()+1) / float64(tmpl.Limit()) * float64(time.Second))
	if prevDone == 0 || time.Duration(nanotime()-prevDone) >= refill {
		return nil
	}
	p.limit, p.ownLimit = rate.NewLimiter(tmpl.Limit(), tmpl.Burst()), true
	return p.limit
}

// stamped returns the payload to send for a publish on topic intended at sent: a copy
// with the measurement header of the device's stream on topic (st), in a buffer from
// stampBufs (buf), or, when it cannot be measured, the payload itself.
func (p *port) stamped(topic string, payload []byte, sent time.Time) (out []byte, st *outStream, buf *[]byte) {
	if measurable(payload) {
		st = p.stream(topic)
	}
	if st == nil {
		p.km.unmeasuredOut.Add(1)
		p.km.metrics.UnmeasuredOut.Inc()
		return payload, nil, nil
	}
	p.eng.meas.window.sent(sent.UnixNano())
	seq := st.last.Load() + 1
	buf = stampBufs.Get().(*[]byte)
	out = stamp(*buf, payload, measure.Header{ID: st.id, Seq: seq, Sent: sent.UnixNano() + p.eng.meas.skew})
	*buf = nil
	st.last.Store(seq)
	return out, st, buf
}

// published counts a publish of n payload bytes that completed, ack after it was sent.
func (p *port) published(qos byte, n int, ack time.Duration) {
	if qos > 0 {
		p.km.ack[qos].Record(ack)
		p.km.metrics.PublishAck[qos].Observe(ack.Seconds())
	}
	p.stats.out.Add(1)
	p.stats.outBytes.Add(int64(n))
	p.km.metrics.Published[qos].Inc()
	p.km.metrics.PublishedBytes[qos].Add(float64(n))
}

// recordLag accounts for a scheduled send that was due at due and left at start. Its lag has
// two parts. Until its previous publish returned (prevDone, nanotime), the device was held
// by its connection: its shaped link (the scenario's intent: a device on a slow link waits
// for it), the broker's acknowledgement, or the network. From then, or from due if later,
// the lag is the generator's own: CPU, scheduling, its queues.
func (p *port) recordLag(due time.Time, prevDone int64, start time.Time) {
	lag := max(start.Sub(due), 0)
	held := min(max(processStart.Add(time.Duration(prevDone)).Sub(due), 0), lag)
	gen := lag - held
	if lc, ok := p.conn.(*linkedConn); ok {
		lc.held.record(held)
	}
	p.stats.scheduled.Add(1)
	k := p.km
	k.lag.Record(lag)
	k.genLag.Record(gen)
	k.scheduled.Add(1)
	k.metrics.ScheduleLag.Observe(lag.Seconds())
	if lag > LateAfter {
		k.late.Add(1)
		k.metrics.PublishLate.Inc()
	}
	if gen > LateAfter {
		k.genLate.Add(1)
		k.metrics.GeneratorLate.Inc()
	}
}

// linkedConn is a connection over a shaped link (sim/link): its devices' waits for the
// link are the scenario's, not the generator's (port.recordLag).
type linkedConn struct {
	connection
	held *linkHeld // of the link's profile
}

// linkHeld is how long the scheduled sends of the devices on one link profile waited for
// their links: from when a send was due until the device's previous publish through the
// link returned.
type linkHeld struct {
	wait *measure.Recorder
	late atomic.Int64 // sends held back more than LateAfter
}

func (h *linkHeld) record(d time.Duration) {
	h.wait.Record(d)
	if d > LateAfter {
		h.late.Add(1)
	}
}

func (p *port) Subscribe(ctx context.Context, filter string, qos byte) (byte, error) {
	if qos > 2 {
		return 0, fmt.Errorf("subscribe %s: QoS %d is not 0, 1 or 2", filter, qos)
	}
	if group, _, ok := topic.SharedFilter(filter); ok {
		// The members of a shared subscription's group each get a part of every stream:
		// together they are one receiver, and count as one.
		p.rcv.Store(p.eng.meas.groupReceiver(group))
	}
	if p.inbox == nil {
		// Made on the first subscription: the many devices of a large fleet that only
		// publish save its few kilobytes. Deliver sees it through the dispatcher's lock,
		// taken when Subscribe adds the route.
		p.inbox = make(chan sim.Message, inboxSize)
	}
	if o := p.eng.observer; o != nil {
		o.DeviceSubscribed(p.home, p.id, filter)
	}
	return p.conn.Subscribe(ctx, filter, qos, p)
}

func (p *port) Inbox() <-chan sim.Message { return p.inbox }

// Deliver is called by the connection's dispatcher; it never blocks.
func (p *port) Deliver(m sim.Message) {
	p.eng.meas.received(p.km, p.rcv.Load(), m, time.Now())
	if !p.discard {
		select {
		case p.inbox <- m:
		default:
			p.stats.dropped.Add(1)
			p.km.metrics.Dropped.Inc()
			return
		}
	}
	q, n := min(m.QoS, 2), int64(len(m.Payload))
	p.stats.in.Add(1)
	p.stats.inBytes.Add(n)
	p.km.metrics.Received[q].Inc()
	p.km.metrics.ReceivedBytes[q].Add(float64(n))
}

func (p *port) SetState(state string) {
	p.stats.mu.Lock()
	prev := ""
	if n := len(p.stats.states); n > 0 {
		prev = p.stats.states[n-1]
	}
	if prev == state {
		p.stats.mu.Unlock()
		return
	}
	p.stats.states = append(p.stats.states, state)
	p.stats.mu.Unlock()
	p.km.metrics.StateChanged(prev, state)
	if o := p.eng.observer; o != nil {
		o.DeviceState(p.home, p.id, state)
	}
}

func (p *port) Say(line string) { p.eng.console.Println(line) }

func (p *port) Reject(topic string, reason error) {
	p.stats.rejected.Add(1)
	p.km.metrics.Rejected.Inc()
	p.eng.console.Debugf("home %d %s rejected a payload on %s: %v", p.home, p.id, topic, reason)
}

func (p *port) Rand() *rand.Rand { return p.rng }

// console serialises narration lines from all device goroutines.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	debug io.Writer // nil: no debug lines
}

func (c *console) Println(line string) {
	if c.w == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintln(c.w, line)
}

func (c *console) Debugf(format string, args ...any) {
	if c.debug == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.debug, format+"\n", args...)
}
