package runner

import (
	"context"
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

	meas     *measurement
	km       *kindMeasure
	rcv      uint32                // receiver id in stream keys
	streams  map[string]*outStream // measured publisher streams by topic; the device's goroutine only
	spare    []byte                // the last stamped payload, once its publish completed: the client is done with it
	flight   context.Context       // bounds publishes in flight; outlives the device's ctx by the grace period
	inFlight *atomic.Int64         // the run's publishes in flight
}

// deviceStats are one device's counters for the summary. The counters are written by the
// device's goroutine and the connection's delivery goroutine, hence atomics.
type deviceStats struct {
	out, outBytes, in, inBytes, rejected, dropped, failed atomic.Int64

	mu     sync.Mutex
	states []string // every state the device entered, in order
}

func (p *port) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	return p.publish(ctx, time.Time{}, topic, payload, qos, retained)
}

func (p *port) PublishAt(ctx context.Context, due time.Time, topic string, payload []byte, qos byte, retained bool) error {
	return p.publish(ctx, due, topic, payload, qos, retained)
}

// publish stamps the payload's measurement header, sends it and counts the outcome. The
// device's ctx only bounds the wait for the rate limit: once a publish is sent it is given
// until the run's grace period ends to complete, so that stopping a run does not turn the
// publishes in flight into losses.
func (p *port) publish(ctx context.Context, due time.Time, topic string, payload []byte, qos byte, retained bool) error {
	if qos > 2 {
		return fmt.Errorf("publish %s: QoS %d is not 0, 1 or 2", topic, qos)
	}
	if err := ctx.Err(); err != nil {
		return err // a stopped device sends nothing more, rate limit or not
	}
	now := time.Now()
	if !p.limit.AllowN(now, 1) {
		if err := p.limit.Wait(ctx); err != nil {
			return err
		}
		now = time.Now()
	}
	sent := now
	if !due.IsZero() {
		sent = due
		lag := max(now.Sub(due), 0)
		p.km.lag.Record(lag)
		p.km.scheduled.Add(1)
		p.metrics.ScheduleLag.Observe(lag.Seconds())
		if lag > LateAfter {
			p.km.late.Add(1)
			p.metrics.PublishLate.Inc()
		}
	}
	out, stamped := payload, false
	if measurable(payload) {
		st := p.streams[topic]
		if st == nil {
			st = p.meas.newStream(topic)
			p.streams[topic] = st
		}
		seq := st.last.Load() + 1
		out = stamp(p.spare, payload, measure.Header{ID: st.id, Seq: seq, Sent: sent.UnixNano()})
		p.spare, stamped = nil, true
		st.last.Store(seq)
	} else {
		p.km.unmeasuredOut.Add(1)
		p.metrics.UnmeasuredOut.Inc()
	}
	p.inFlight.Add(1)
	err := p.conn.Publish(p.flight, topic, out, qos, retained)
	p.inFlight.Add(-1)
	if err != nil {
		p.stats.failed.Add(1)
		p.metrics.PublishFailures[qos].Inc()
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	if stamped && cap(out) <= maxSpare {
		p.spare = out // complete: written (QoS 0) or acknowledged, so paho holds it no more
	}
	if qos > 0 {
		d := time.Since(now)
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
	return p.conn.Subscribe(ctx, filter, qos, p)
}

func (p *port) Inbox() <-chan sim.Message { return p.inbox }

// Deliver is called by the connection's dispatcher; it never blocks.
func (p *port) Deliver(m sim.Message) {
	p.meas.received(p.km, p.rcv, m, time.Now())
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
