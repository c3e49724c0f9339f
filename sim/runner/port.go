package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/measure"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// inboxSize is how many messages a device may have waiting before new ones are dropped.
const inboxSize = 64

// maxSpare bounds the stamped payload a port keeps for its next publish (port.spare), so
// that a device which once sent a large payload does not hold its size for good.
const maxSpare = 4 << 10

// connection is what a port needs from its MQTT connection; *mqttconn.Conn implements it.
type connection interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error
	Subscribe(ctx context.Context, filter string, qos byte, r mqttconn.Receiver) (byte, error)
}

// port is one device's sim.IO: its share of a connection, its rate limit, its inbox and
// its counters.
type port struct {
	home    int
	id      string
	conn    connection
	limit   *rate.Limiter
	inbox   chan sim.Message
	rng     *rand.Rand
	metrics *metrics.Kind
	console *console
	stats   deviceStats
	discard bool // the device is a sim.Discarder: count and measure, never queue

	meas        *measurement
	km          *kindMeasure
	rcv         atomic.Uint32         // receiver id in stream keys (a shared subscription's group's, see Subscribe)
	first       *outStream            // the stream of the first topic it published a measured message on
	streams     map[string]*outStream // the streams of its other topics (most devices have none)
	spare       []byte                // the last stamped payload, once its publish completed: the client is done with it
	flight      context.Context       // bounds publishes in flight; outlives the device's ctx by the grace period
	inFlight    *atomic.Int64         // the run's publishes in flight
	workers     *workers              // run the publishes
	lastPublish int64                 // nanotime of the device's previous publish (its goroutine only)
	req         pubReq                // the device's publish request, reused
}

// deviceStats are one device's counters for the summary. The counters are written by the
// device's goroutine and the connection's delivery goroutine, hence atomics.
type deviceStats struct {
	out, outBytes, in, inBytes, rejected, dropped, failed atomic.Int64

	mu     sync.Mutex
	states []string // every state the device entered, in order
}

func (p *port) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	return p.PublishAt(ctx, time.Time{}, topic, payload, qos, retained)
}

// pubReq is one publish handed from a device's goroutine to a worker. Each port reuses its
// own, since a device makes one publish at a time.
type pubReq struct {
	p        *port
	ctx      context.Context // the device's: bounds the wait for the rate limit
	due      time.Time       // zero for an unscheduled publish
	topic    string
	payload  []byte
	qos      byte
	retained bool
	done     chan error
}

func (r *pubReq) run() { r.done <- r.p.send(r) }

// PublishAt waits for the device's rate limit, then has a worker send the message (see
// workers); a zero due is an unscheduled publish. The device's ctx only bounds the wait for
// the rate limit: once a publish is handed over it is given until the run's grace period
// ends to complete, so that stopping a run does not turn the publishes in flight into
// losses. This runs on the device's goroutine, so it keeps a small frame and calls little.
//
// A device that publishes often (its previous publish less than hotGap ago) sends on its own
// goroutine instead: the hand-over costs two goroutine switches a message (about 0.6 µs,
// 15 % of the top QoS 0 rate end to end), and a few busy devices' larger stacks cost nothing.
func (p *port) PublishAt(ctx context.Context, due time.Time, topic string, payload []byte, qos byte, retained bool) error {
	r := &p.req // made with the port: allocating here could grow the stack
	r.ctx, r.due, r.topic, r.payload, r.qos, r.retained = ctx, due, topic, payload, qos, retained
	now := nanotime()
	hot := now-p.lastPublish < int64(hotGap)
	p.lastPublish = now
	var err error
	if hot {
		err = p.send(r)
	} else {
		select {
		case p.workers.reqs <- r:
		default:
			p.workers.start(r)
		}
		err = <-r.done
	}
	r.ctx, r.payload = nil, nil // the device's buffer is its own again
	return err
}

// hotGap is how soon after its previous publish a device's next one counts as frequent.
const hotGap = 10 * time.Millisecond

// nanotime is a monotonic clock reading in nanoseconds, cheap enough for a device's small
// stack.
func nanotime() int64 { return int64(time.Since(processStart)) }

var processStart = time.Now()

// stream returns the device's publisher stream on topic, making it on first use. One
// publish at a time calls it.
func (p *port) stream(topic string) *outStream {
	if p.first != nil && p.first.topic == topic {
		return p.first
	}
	if st := p.streams[topic]; st != nil {
		return st
	}
	st := p.meas.newStream(topic)
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
	if !p.limit.AllowN(start, 1) {
		if err := p.limit.Wait(r.ctx); err != nil {
			return err
		}
		start = time.Now()
	}
	topic, payload, qos := r.topic, r.payload, r.qos
	sent := start
	if !r.due.IsZero() {
		sent = r.due
		lag := max(start.Sub(r.due), 0)
		p.km.lag.Record(lag)
		p.km.scheduled.Add(1)
		p.metrics.ScheduleLag.Observe(lag.Seconds())
		if lag > LateAfter {
			p.km.late.Add(1)
			p.metrics.PublishLate.Inc()
		}
	}
	out := payload
	var st *outStream
	if measurable(payload) {
		st = p.stream(topic)
		seq := st.last.Load() + 1
		out = stamp(p.spare, payload, measure.Header{ID: st.id, Seq: seq, Sent: sent.UnixNano()})
		p.spare = nil
		st.last.Store(seq)
	} else {
		p.km.unmeasuredOut.Add(1)
		p.metrics.UnmeasuredOut.Inc()
	}
	p.inFlight.Add(1)
	sendAt := time.Now()
	err := p.conn.Publish(p.flight, topic, out, qos, r.retained)
	p.inFlight.Add(-1)
	if err != nil {
		if st != nil && errors.Is(err, mqttconn.ErrNotSent) {
			// Nothing went out, so nothing can arrive: the seq is not spent, and the
			// failure is counted as one, not also as a loss.
			st.last.Add(^uint64(0))
		}
		p.stats.failed.Add(1)
		p.metrics.PublishFailures[qos].Inc()
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	if st != nil && qos == 0 && cap(out) <= maxSpare {
		// Written, so paho holds it no more. Not at QoS 1 and 2: with a persistent session
		// paho completes a resent publish's token when it writes it again, and keeps the
		// payload in its store until the acknowledgement (seen as a race under -race).
		p.spare = out
	}
	if qos > 0 {
		d := time.Since(sendAt)
		p.km.ack[qos].Record(d)
		p.metrics.PublishAck[qos].Observe(d.Seconds())
	}
	n := int64(len(payload))
	p.stats.out.Add(1)
	p.stats.outBytes.Add(n)
	p.metrics.Published[qos].Inc()
	p.metrics.PublishedBytes[qos].Add(float64(n))
	return nil
}

func (p *port) Subscribe(ctx context.Context, filter string, qos byte) (byte, error) {
	if qos > 2 {
		return 0, fmt.Errorf("subscribe %s: QoS %d is not 0, 1 or 2", filter, qos)
	}
	if group, _, ok := topic.SharedFilter(filter); ok {
		// The members of a shared subscription's group each get a part of every stream:
		// together they are one receiver, and count as one.
		p.rcv.Store(p.meas.groupReceiver(group))
	}
	if p.inbox == nil {
		// Made on the first subscription: the many devices of a large fleet that only
		// publish save its few kilobytes. Deliver sees it through the dispatcher's lock,
		// taken when Subscribe adds the route.
		p.inbox = make(chan sim.Message, inboxSize)
	}
	return p.conn.Subscribe(ctx, filter, qos, p)
}

func (p *port) Inbox() <-chan sim.Message { return p.inbox }

// Deliver is called by the connection's dispatcher; it never blocks.
func (p *port) Deliver(m sim.Message) {
	p.meas.received(p.km, p.rcv.Load(), m, time.Now())
	if !p.discard {
		select {
		case p.inbox <- m:
		default:
			p.stats.dropped.Add(1)
			p.metrics.Dropped.Inc()
			return
		}
	}
	q, n := min(m.QoS, 2), int64(len(m.Payload))
	p.stats.in.Add(1)
	p.stats.inBytes.Add(n)
	p.metrics.Received[q].Inc()
	p.metrics.ReceivedBytes[q].Add(float64(n))
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
	p.metrics.StateChanged(prev, state)
}

func (p *port) Say(line string) { p.console.Println(line) }

func (p *port) Reject(topic string, reason error) {
	p.stats.rejected.Add(1)
	p.metrics.Rejected.Inc()
	p.console.Debugf("home %d %s rejected a payload on %s: %v", p.home, p.id, topic, reason)
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
