package mqttconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

func TestFullJitter(t *testing.T) {
	const base, ceiling = 100 * time.Millisecond, 10 * time.Second
	for _, c := range []struct {
		attempt int
		limit   time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{6, 6400 * time.Millisecond},
		{7, ceiling},
		{1000, ceiling}, // no overflow
	} {
		var sum, top time.Duration
		const draws = 2000
		for range draws {
			d := FullJitter(c.attempt, base, ceiling)
			if d < 0 || d >= c.limit {
				t.Fatalf("attempt %d: pause %v outside [0, %v)", c.attempt, d, c.limit)
			}
			sum += d
			top = max(top, d)
		}
		// Uniform over [0, limit): the mean is limit/2 (the standard error over 2000
		// draws is 0.6% of limit) and the largest draw is close to limit.
		if mean := sum / draws; mean < c.limit*45/100 || mean > c.limit*55/100 {
			t.Errorf("attempt %d: mean pause %v, want about %v", c.attempt, mean, c.limit/2)
		}
		if top < c.limit*9/10 {
			t.Errorf("attempt %d: largest pause %v of %d, want close to %v", c.attempt, top, draws, c.limit)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	var o Options
	o.withDefaults()
	if o.ReconnectBase != 100*time.Millisecond || o.ReconnectCap != 10*time.Second || o.Persistent {
		t.Errorf("defaults: base %v, cap %v, persistent %t", o.ReconnectBase, o.ReconnectCap, o.Persistent)
	}
	o = Options{ReconnectBase: time.Second, ReconnectCap: time.Millisecond}
	o.withDefaults()
	if o.ReconnectCap != time.Second {
		t.Errorf("a cap below the base: cap %v, want the base", o.ReconnectCap)
	}
}

func TestQoS2Seen(t *testing.T) {
	var s QoS2Seen
	steps := []struct {
		op      string // deliver, release, reset
		id      uint16
		dup     bool
		deliver bool
	}{
		{"deliver", 1, false, true},
		{"deliver", 1, true, false}, // sent again before PUBREL: acknowledged, not delivered
		{"deliver", 2, true, true},  // a re-sent message we never got: delivered
		{"release", 1, false, false},
		{"deliver", 1, true, true}, // id 1 released: this is another message
		{"deliver", 3, false, true},
		{"deliver", 3, false, true}, // a first sending is always new
		{"reset", 0, false, false},
		{"deliver", 2, true, true}, // a new session
	}
	for i, st := range steps {
		switch st.op {
		case "deliver":
			if got := s.Deliver(st.id, st.dup); got != st.deliver {
				t.Errorf("step %d: deliver(%d, dup=%t) = %t, want %t", i, st.id, st.dup, got, st.deliver)
			}
		case "release":
			s.Release(st.id)
		case "reset":
			s.Reset()
		}
	}
}

// cutter dials real TCP connections for a Conn (Options.NetDial) and cuts the latest one
// on demand, as a failing network would; it tells of every dial and every write.
type cutter struct {
	mu     sync.Mutex
	conn   *cuttableConn
	dials  chan struct{}
	writes chan struct{}
}

func newCutter() *cutter {
	return &cutter{dials: make(chan struct{}, 100), writes: make(chan struct{}, 1000)}
}

func (d *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := &cuttableConn{Conn: nc, writes: d.writes}
	d.mu.Lock()
	d.conn = c
	d.mu.Unlock()
	notify(d.dials)
	return c, nil
}

func (d *cutter) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.conn.cut.Store(true)
	d.conn.Close()
}

// errCut is what a cut connection reports. paho v1.5.1 takes the error of a connection
// closed locally ("use of closed network connection") for its own Disconnect and
// ignores it (net.go, startIncoming): a cut must say something else, as sim/link does.
var errCut = errors.New("connection cut by the test")

type cuttableConn struct {
	net.Conn
	cut    atomic.Bool
	writes chan struct{}
}

func (c *cuttableConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && c.cut.Load() {
		err = errCut
	}
	return n, err
}

func (c *cuttableConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil && c.cut.Load() {
		err = errCut
	}
	if err == nil {
		notify(c.writes)
	}
	return n, err
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func drain(ch chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// await waits for one value from ch, failing the test after 10 s.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// changes records what OnChange is told.
type changes struct {
	mu     sync.Mutex
	events []string // "up", "down: <lost error>" or "down"
	ups    chan struct{}
	downs  chan struct{}
}

func newChanges() *changes {
	return &changes{ups: make(chan struct{}, 100), downs: make(chan struct{}, 100)}
}

func (c *changes) record(up bool, lost error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case up:
		c.events = append(c.events, "up")
		notify(c.ups)
	case lost != nil:
		c.events = append(c.events, "down: "+lost.Error())
		notify(c.downs)
	default:
		c.events = append(c.events, "down")
		notify(c.downs)
	}
}

// checkReconnected checks that OnChange saw the connection come up, drop with an error
// and come back, alternating.
func (c *changes) checkReconnected(t *testing.T, who string) {
	t.Helper()
	c.mu.Lock()
	ev := slices.Clone(c.events)
	c.mu.Unlock()
	ok := len(ev) >= 3 && len(ev)%2 == 1
	for i, e := range ev {
		if (i%2 == 0) != (e == "up") || (i%2 == 1 && !strings.HasPrefix(e, "down: ")) {
			ok = false
		}
	}
	if !ok {
		t.Errorf("%s: OnChange saw %q, want up, then down with an error and up again (alternating)", who, ev)
	}
}

// seqRecorder is a Receiver of sequence-numbered messages.
type seqRecorder struct {
	mu      sync.Mutex
	got     map[int]int // sequence number → deliveries
	bad     []string
	arrived chan struct{}
}

func newSeqRecorder() *seqRecorder {
	return &seqRecorder{got: map[int]int{}, arrived: make(chan struct{}, 1)}
}

func (r *seqRecorder) Deliver(m sim.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := strconv.Atoi(string(m.Payload))
	if err != nil {
		r.bad = append(r.bad, string(m.Payload))
		return
	}
	r.got[n]++
	notify(r.arrived)
}

// missing returns the sequence numbers below total not received, and the duplicates.
func (r *seqRecorder) missing(total int) (missing []int, dups map[int]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	dups = map[int]int{}
	for i := range total {
		switch n := r.got[i]; {
		case n == 0:
			missing = append(missing, i)
		case n > 1:
			dups[i] = n
		}
	}
	return missing, dups
}

// waitAll waits until every sequence number below total arrived, for up to 10 s.
func (r *seqRecorder) waitAll(total int) (missing []int, dups map[int]int) {
	deadline := time.After(10 * time.Second)
	for {
		missing, dups = r.missing(total)
		if len(missing) == 0 {
			return missing, dups
		}
		select {
		case <-r.arrived:
		case <-deadline:
			return missing, dups
		}
	}
}

func TestPersistentSessionsSurviveABrokerRestart(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("QoS %d", qos), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			m := testbroker.StartMosquitto(t, testbroker.Config{Persistence: true})
			defer m.Stop()
			ctx := context.Background()
			opts := Options{Broker: m.URL(), ConnectTimeout: 5 * time.Second, Persistent: true}

			subChanges, pubChanges := newChanges(), newChanges()
			so := opts
			so.OnChange = subChanges.record
			sub, err := Dial(ctx, so, "seq-sub")
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			rec := newSeqRecorder()
			if g, err := sub.Subscribe(ctx, "test/seq", qos, rec); err != nil || g != qos {
				t.Fatalf("subscribe: granted %d, %v", g, err)
			}
			po := opts
			po.OnChange = pubChanges.record
			var attempts atomic.Int64
			po.OnReconnectAttempt = func(error) { attempts.Add(1) }
			pub, err := Dial(ctx, po, "seq-pub")
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()

			// 200 messages over about 2 s; the broker restarts half way. Publish waits
			// while the publisher is away; the persistent sessions keep what is in
			// flight on both sides, and what the broker holds for the subscriber.
			const total = 200
			restarted := make(chan error, 1)
			pace := time.NewTicker(10 * time.Millisecond)
			defer pace.Stop()
			for i := range total {
				<-pace.C
				if i == total/2 {
					go func() { restarted <- m.Restart() }()
				}
				if err := pub.Publish(ctx, "test/seq", []byte(strconv.Itoa(i)), qos, false); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			if err := await(t, restarted, "the restart"); err != nil {
				t.Fatal(err)
			}

			missing, dups := rec.waitAll(total)
			if len(missing) > 0 {
				t.Errorf("%d of %d messages never arrived: %v", len(missing), total, missing)
			}
			switch {
			case qos == 2 && len(dups) > 0:
				t.Errorf("QoS 2 delivered more than once: %v (sequence number → deliveries)", dups)
			case len(dups) > 0:
				t.Logf("QoS 1 duplicates (at least once): %v (sequence number → deliveries)", dups)
			}
			if len(rec.bad) > 0 {
				t.Errorf("unexpected payloads %q", rec.bad)
			}
			pubChanges.checkReconnected(t, "publisher")
			subChanges.checkReconnected(t, "subscriber")
			if !pub.Up() || !sub.Up() || attempts.Load() == 0 {
				t.Errorf("up: publisher %t, subscriber %t; publisher reconnect attempts %d", pub.Up(), sub.Up(), attempts.Load())
			}
		})
	}
}

// cutOnFirst is a Receiver that cuts its own connection when the first message arrives,
// before paho can acknowledge it (paho acknowledges after the handler returns): the
// broker then sends the message again after the reconnect.
type cutOnFirst struct {
	*seqRecorder
	cut  func()
	once sync.Once
}

func (r *cutOnFirst) Deliver(m sim.Message) {
	r.once.Do(r.cut)
	r.seqRecorder.Deliver(m)
}

func TestMessageSentAgainAfterADrop(t *testing.T) {
	// The acknowledgement of message 0 is lost with the connection. QoS 1 delivers it
	// again (at least once); QoS 2 must not (exactly once), although paho passes the
	// broker's second sending on like a new message.
	for _, c := range []struct {
		qos  byte
		want int // deliveries of message 0
	}{{1, 2}, {2, 1}} {
		t.Run(fmt.Sprintf("QoS %d", c.qos), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			m := testbroker.StartMosquitto(t, testbroker.Config{})
			defer m.Stop()
			ctx := context.Background()
			d := newCutter()
			ch := newChanges()
			sub, err := Dial(ctx, Options{Broker: m.URL(), NetDial: d.dial, Persistent: true,
				ReconnectBase: 10 * time.Millisecond, OnChange: ch.record}, "twice-sub")
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			rec := &cutOnFirst{seqRecorder: newSeqRecorder(), cut: d.cut}
			if _, err := sub.Subscribe(ctx, "test/again", c.qos, rec); err != nil {
				t.Fatal(err)
			}
			pub, err := Dial(ctx, Options{Broker: m.URL()}, "twice-pub")
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()

			if err := pub.Publish(ctx, "test/again", []byte("0"), c.qos, false); err != nil {
				t.Fatal(err)
			}
			await(t, ch.downs, "the subscriber's drop")
			await(t, ch.ups, "the subscriber's first connection")
			await(t, ch.ups, "the subscriber's reconnection")
			// mosquitto sends the session's unacknowledged message before later ones:
			// once message 1 is here, a second delivery of 0 would be too.
			if err := pub.Publish(ctx, "test/again", []byte("1"), c.qos, false); err != nil {
				t.Fatal(err)
			}
			if missing, _ := rec.waitAll(2); len(missing) > 0 {
				t.Fatalf("missing %v", missing)
			}
			rec.mu.Lock()
			got := rec.got[0]
			rec.mu.Unlock()
			if got != c.want {
				t.Errorf("message 0 delivered %d times, want %d", got, c.want)
			}
		})
	}
}

func TestPublishInFlightWhenTheConnectionDrops(t *testing.T) {
	for _, persistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("persistent=%t", persistent), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			m := testbroker.StartMosquitto(t, testbroker.Config{})
			defer m.Stop()
			ctx := context.Background()
			watcher, err := Dial(ctx, Options{Broker: m.URL()}, "inflight-watcher")
			if err != nil {
				t.Fatal(err)
			}
			defer watcher.Close()
			rec := newSeqRecorder()
			if _, err := watcher.Subscribe(ctx, "test/inflight", 1, rec); err != nil {
				t.Fatal(err)
			}
			d := newCutter()
			ch := newChanges()
			pub, err := Dial(ctx, Options{Broker: m.URL(), NetDial: d.dial, Persistent: persistent,
				ConnectTimeout: 5 * time.Second, ReconnectBase: 10 * time.Millisecond, OnChange: ch.record}, "inflight-pub")
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			await(t, ch.ups, "the publisher's connection")

			// The broker hangs: the PUBLISH goes out, no PUBACK comes back; then the
			// connection drops with the message in flight.
			if err := m.Freeze(); err != nil {
				t.Fatal(err)
			}
			drain(d.writes)
			res := make(chan error, 1)
			go func() { res <- pub.Publish(ctx, "test/inflight", []byte("0"), 1, false) }()
			await(t, d.writes, "the PUBLISH on the wire")
			d.cut()
			await(t, ch.downs, "the publisher's drop")
			if err := m.Thaw(); err != nil {
				t.Fatal(err)
			}
			err = await(t, res, "Publish to return")
			if !persistent {
				// Lost with the connection, never sent again. (The broker may still have
				// read it before the drop: unknown, hence the error.)
				if err == nil || !strings.Contains(err.Error(), "connection lost") {
					t.Fatalf("clean session: Publish = %v, want the connection-lost error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("persistent session: Publish = %v, want nil once sent again", err)
			}
			if missing, dups := rec.waitAll(1); len(missing) > 0 {
				t.Fatal("the message sent again never arrived")
			} else {
				t.Logf("deliveries beyond the first: %v", dups)
			}
			checkUpAgain(t, ch)
		})
	}
}

// checkUpAgain waits until the Conn behind ch is up again after its drop.
func checkUpAgain(t *testing.T, ch *changes) {
	t.Helper()
	await(t, ch.ups, "the reconnection")
	ch.checkReconnected(t, "connection")
}

func TestPublishWhileDown(t *testing.T) {
	defer goleak.VerifyNone(t)
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	defer m.Stop()
	ctx := context.Background()
	ch := newChanges()
	c, err := Dial(ctx, Options{Broker: m.URL(), ConnectTimeout: 300 * time.Millisecond,
		ReconnectBase: 20 * time.Millisecond, ReconnectCap: 50 * time.Millisecond, OnChange: ch.record}, "outage")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	await(t, ch.ups, "the connection")
	m.Stop()
	await(t, ch.downs, "the drop")

	// Down for longer than the timeout: Publish gives up, saying why, for any QoS.
	for qos := range byte(3) {
		err := c.Publish(ctx, "test/outage", []byte("x"), qos, false)
		if !errors.Is(err, mqtt.ErrNotConnected) {
			t.Errorf("QoS %d while down: %v, want ErrNotConnected", qos, err)
		}
	}
	// ctx ends first.
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := c.Publish(short, "test/outage", []byte("x"), 0, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ctx ended while down: %v", err)
	}
	// Back within the timeout: Publish waits and succeeds, QoS 0 included.
	res := make(chan error, 1)
	go func() { res <- c.Publish(ctx, "test/outage", []byte("x"), 0, false) }()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if err := await(t, res, "Publish"); err != nil {
		// The reconnect pause is at most 50 ms, well within the 300 ms timeout;
		// mosquitto may have taken longer to start on a busy machine.
		t.Logf("Publish across the restart: %v", err)
		if err := c.Publish(ctx, "test/outage", []byte("x"), 0, false); err != nil {
			t.Errorf("Publish after the restart: %v", err)
		}
	}
	checkUpAgain(t, ch)

	c.Close()
	if err := c.Publish(ctx, "test/outage", []byte("x"), 1, false); !errors.Is(err, errClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if _, err := c.Subscribe(ctx, "test/outage", 1, newSeqRecorder()); !errors.Is(err, errClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
}

func TestCloseAbortsAConnectAttempt(t *testing.T) {
	defer goleak.VerifyNone(t)
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	defer m.Stop()
	ctx := context.Background()
	d := newCutter()
	ch := newChanges()
	opts := Options{Broker: m.URL(), NetDial: d.dial, ConnectTimeout: 30 * time.Second,
		ReconnectBase: time.Millisecond, OnChange: ch.record}
	c, err := Dial(ctx, opts, "abort")
	if err != nil {
		t.Fatal(err)
	}
	await(t, d.dials, "the first dial")

	// A hung broker: TCP connections are accepted (by the kernel), CONNACK never comes.
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Run("Dial", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		begin := time.Now()
		_, err := Dial(short, Options{Broker: m.URL(), ConnectTimeout: 30 * time.Second}, "abort-dial")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Dial: %v, want the context's deadline", err)
		}
		if took := time.Since(begin); took > 5*time.Second {
			t.Errorf("Dial took %v to give up after its context ended at 100 ms", took)
		}
	})

	d.cut()
	await(t, ch.downs, "the drop")
	await(t, d.dials, "the reconnect attempt") // now waiting for a CONNACK for up to 30 s
	begin := time.Now()
	c.Close()
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Close took %v with a reconnect attempt in progress (connect timeout 30 s)", took)
	}
	if c.Up() {
		t.Error("up after Close")
	}
}
