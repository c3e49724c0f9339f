package lean

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// inbox is a Receiver that keeps what it gets.
type inbox struct {
	mu   sync.Mutex
	msgs []sim.Message
	got  chan struct{}
}

func newInbox() *inbox { return &inbox{got: make(chan struct{}, 1<<16)} }

func (in *inbox) Deliver(m sim.Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
	in.got <- struct{}{}
}

// wait waits for n messages in all, for at most d.
func (in *inbox) wait(t *testing.T, n int, d time.Duration) []sim.Message {
	t.Helper()
	deadline := time.After(d)
	for {
		in.mu.Lock()
		got := len(in.msgs)
		in.mu.Unlock()
		if got >= n {
			in.mu.Lock()
			defer in.mu.Unlock()
			return append([]sim.Message(nil), in.msgs...)
		}
		select {
		case <-in.got:
		case <-deadline:
			t.Fatalf("%d messages of %d after %v", got, n, d)
		}
	}
}

func embedded(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dial(t *testing.T, cfg Config, id string) *Conn {
	t.Helper()
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	c, err := Dial(context.Background(), cfg, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPublishSubscribeEveryQoS sends a pipelined burst at each QoS through the embedded
// broker and checks every message arrives once, in order, at the QoS asked.
func TestPublishSubscribeEveryQoS(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b := embedded(t)
	defer b.Close()
	for _, proto := range []byte{MQTT311, MQTT5} {
		for qos := range byte(3) {
			t.Run(fmt.Sprintf("v%d QoS %d", proto, qos), func(t *testing.T) {
				// Client ids of their own: the broker may still be ending the last subtest's
				// "sub" as this one subscribes, and a session's end removes its client id's
				// subscriptions.
				id := fmt.Sprintf("v%d-q%d", proto, qos)
				sub := dial(t, Config{Options: mqttconn.Options{Broker: b.URL()}, Protocol: proto}, "sub-"+id)
				defer sub.Close()
				pub := dial(t, Config{Options: mqttconn.Options{Broker: b.URL()}, Protocol: proto, Window: 16}, "pub-"+id)
				defer pub.Close()
				in := newInbox()
				if g, err := sub.Subscribe(context.Background(), "t/#", qos, in); err != nil || g != qos {
					t.Fatalf("subscribe: granted %d, %v", g, err)
				}
				const n = 500
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for w := range 10 { // ten publishers share the connection and its window
					wg.Go(func() {
						for i := w; i < n; i += 10 {
							if err := pub.Publish(context.Background(), fmt.Sprintf("t/%d", w), []byte(fmt.Sprint(i)), qos, false); err != nil {
								errs <- err
							}
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				msgs := in.wait(t, n, 10*time.Second)
				time.Sleep(50 * time.Millisecond)
				if len(in.msgs) != n {
					t.Fatalf("%d messages, want %d", len(in.msgs), n)
				}
				last := map[string]int{}
				for _, m := range msgs {
					var i int
					fmt.Sscan(string(m.Payload), &i)
					if prev, ok := last[m.Topic]; ok && i != prev+10 {
						t.Fatalf("%s: %d after %d", m.Topic, i, prev)
					}
					last[m.Topic] = i
					if m.QoS != qos {
						t.Fatalf("QoS %d, want %d", m.QoS, qos)
					}
				}
			})
		}
	}
}

func TestWrongPasswordAndUnreachableAreExplained(t *testing.T) {
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0", Users: map[string]broker.User{"u": {Password: "p"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = Dial(context.Background(), Config{Options: mqttconn.Options{Broker: b.URL(), Username: "u", Password: "wrong", ConnectTimeout: 2 * time.Second}}, "x")
	if !errors.Is(err, mqttconn.ErrLogin) || !errors.Is(err, mqttconn.ErrAuth) {
		t.Errorf("wrong password: %v, want ErrLogin", err)
	}
	_, err = Dial(context.Background(), Config{Options: mqttconn.Options{Broker: "tcp://127.0.0.1:1", ConnectTimeout: 2 * time.Second}}, "x")
	if !errors.Is(err, mqttconn.ErrUnreachable) {
		t.Errorf("closed port: %v, want ErrUnreachable", err)
	}
}

// TestKeepaliveDetectsASilentBroker: an idle connection pings; when the broker stops
// answering (the proxy holds everything it sends) the connection is dropped within the
// connect timeout of the unanswered PINGREQ, and comes back once the broker answers again.
func TestKeepaliveDetectsASilentBroker(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b := embedded(t)
	defer b.Close()
	proxy := testbroker.StartProxy(t, b.Addr())
	defer proxy.Close()
	changes := make(chan error, 16)
	cfg := Config{Options: mqttconn.Options{Broker: proxy.URL(), KeepAlive: 400 * time.Millisecond, ConnectTimeout: 400 * time.Millisecond,
		ReconnectBase: 50 * time.Millisecond, ReconnectCap: 100 * time.Millisecond,
		OnChange: func(up bool, lost error) {
			if !up {
				changes <- lost
			} else {
				changes <- nil
			}
		}}}
	c := dial(t, cfg, "idle")
	defer c.Close()
	<-changes               // up
	time.Sleep(time.Second) // a few keepalive periods: pings answered, still up
	if !c.Up() {
		t.Fatal("an idle connection with answered pings went down")
	}
	proxy.Pause(testbroker.Downstream)
	select {
	case lost := <-changes:
		if !errors.Is(lost, mqttconn.ErrNoAnswer) {
			t.Errorf("dropped with %v, want ErrNoAnswer", lost)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a broker that stopped answering went unnoticed for 5 s")
	}
	proxy.Resume(testbroker.Downstream)
	select {
	case err := <-changes:
		if err != nil {
			t.Fatalf("went down again: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not reconnect within 5 s of the broker answering again")
	}
}

// TestLargeAndSmallMessagesInterleaved sends payloads from 0 bytes to past the big read
// buffer, in one burst, and checks each arrives whole: the reader switches between its
// small and big buffers and reads large bodies straight through.
func TestLargeAndSmallMessagesInterleaved(t *testing.T) {
	b := embedded(t)
	defer b.Close()
	c := dial(t, Config{Options: mqttconn.Options{Broker: b.URL()}}, "big")
	defer c.Close()
	in := newInbox()
	if _, err := c.Subscribe(context.Background(), "big/#", 1, in); err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, 200, 300, 9000, 5, 70000, 3, 8192, 255}
	var wg sync.WaitGroup
	for i, n := range sizes {
		wg.Go(func() {
			p := bytes.Repeat([]byte{byte('a' + i)}, n)
			if err := c.Publish(context.Background(), fmt.Sprintf("big/%d", i), p, 1, false); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, m := range in.wait(t, len(sizes), 10*time.Second) {
		var i int
		fmt.Sscanf(m.Topic, "big/%d", &i)
		if !bytes.Equal(m.Payload, bytes.Repeat([]byte{byte('a' + i)}, sizes[i])) {
			t.Errorf("%s: %d bytes arrived not as sent (%d)", m.Topic, len(m.Payload), sizes[i])
		}
	}
}

// TestMQTT5AgainstMosquitto speaks MQTT 5 to mosquitto: messages flow at QoS 1 and 2, the
// broker's Receive Maximum bounds the window, and a wrong password is ErrLogin as under
// 3.1.1 (reason code 0x86 or 0x87 instead of return code 4 or 5).
func TestMQTT5AgainstMosquitto(t *testing.T) {
	m := testbroker.StartMosquitto(t, testbroker.Config{MaxInflightMessages: 7, Users: map[string]string{"u": "secret"}})
	opts := mqttconn.Options{Broker: m.URL(), Username: "u", Password: "secret", ConnectTimeout: 5 * time.Second}
	c := dial(t, Config{Options: opts, Protocol: MQTT5}, "v5")
	defer c.Close()
	if w := c.Window(); w != 7 {
		t.Errorf("window %d, want mosquitto's Receive Maximum 7", w)
	}
	in := newInbox()
	if _, err := c.Subscribe(context.Background(), "v5/#", 2, in); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if err := c.Publish(context.Background(), fmt.Sprintf("v5/%d", i%4), []byte("x"), byte(1+i%2), false); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	in.wait(t, 40, 10*time.Second)
	opts.Password = "wrong"
	_, err := Dial(context.Background(), Config{Options: opts, Protocol: MQTT5}, "v5-wrong")
	if !errors.Is(err, mqttconn.ErrLogin) {
		t.Errorf("wrong password: %v, want ErrLogin", err)
	}
}

// TestCloseWhileDownEndsEverything closes a connection whose broker went away while it
// tries to reconnect, with a publish waiting for it: the publish fails as not sent, and no
// goroutine of the connection is left.
func TestCloseWhileDownEndsEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b := embedded(t)
	down := make(chan struct{}, 1)
	c := dial(t, Config{Options: mqttconn.Options{Broker: b.URL(), ConnectTimeout: 5 * time.Second,
		ReconnectBase: 20 * time.Millisecond, ReconnectCap: 50 * time.Millisecond,
		OnChange: func(up bool, _ error) {
			if !up {
				select {
				case down <- struct{}{}:
				default:
				}
			}
		}}}, "gone")
	b.Close()
	select {
	case <-down:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not notice its broker go")
	}
	published := make(chan error, 1)
	go func() { published <- c.Publish(context.Background(), "t", []byte("x"), 1, false) }()
	time.Sleep(200 * time.Millisecond) // a few reconnect attempts
	c.Close()
	select {
	case err := <-published:
		if !errors.Is(err, mqttconn.ErrNotSent) {
			t.Errorf("publish waiting at Close: %v, want ErrNotSent", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a publish waiting for the connection outlived Close")
	}
}

// outcomes is an Outcome per publish, keeping what each was told and how often.
type outcomes struct {
	mu   sync.Mutex
	told map[int][]error
	all  chan struct{}
}

type told struct {
	o *outcomes
	i int
}

func (t told) Outcome(err error) {
	t.o.mu.Lock()
	t.o.told[t.i] = append(t.o.told[t.i], err)
	t.o.mu.Unlock()
	t.o.all <- struct{}{}
}

// wait waits until n outcomes were told, for at most d, and returns them by publish.
func (o *outcomes) wait(t *testing.T, n int, d time.Duration) map[int][]error {
	t.Helper()
	deadline := time.After(d)
	for range n {
		select {
		case <-o.all:
		case <-deadline:
			t.Fatalf("fewer than %d outcomes within %v", n, d)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.told
}

// TestPublishAsyncPipelinesOneCaller has one caller hand over a burst of QoS 1 and 2
// publishes without waiting: many are in flight at once, each is told its outcome once,
// and they arrive once each, in order.
func TestPublishAsyncPipelinesOneCaller(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b := embedded(t)
	defer b.Close()
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("QoS %d", qos), func(t *testing.T) {
			id := fmt.Sprintf("async-q%d", qos)
			sub := dial(t, Config{Options: mqttconn.Options{Broker: b.URL()}}, "sub-"+id)
			defer sub.Close()
			pub := dial(t, Config{Options: mqttconn.Options{Broker: b.URL()}, Window: 64}, "pub-"+id)
			defer pub.Close()
			in := newInbox()
			if _, err := sub.Subscribe(context.Background(), "a/#", qos, in); err != nil {
				t.Fatal(err)
			}
			const n = 1000
			o := &outcomes{told: map[int][]error{}, all: make(chan struct{}, n)}
			most := 0
			for i := range n {
				if err := pub.PublishAsync(context.Background(), "a/1", []byte(fmt.Sprint(i)), qos, false, told{o, i}); err != nil {
					t.Fatal(err)
				}
				pub.mu.Lock()
				most = max(most, len(pub.flights))
				pub.mu.Unlock()
			}
			got := o.wait(t, n, 10*time.Second)
			for i := range n {
				if errs := got[i]; len(errs) != 1 || errs[0] != nil {
					t.Fatalf("publish %d was told %v, want nil once", i, errs)
				}
			}
			if most < 2 {
				t.Errorf("at most %d publish in flight at once, want several", most)
			}
			msgs := in.wait(t, n, 10*time.Second)
			for i, m := range msgs {
				if string(m.Payload) != fmt.Sprint(i) {
					t.Fatalf("message %d is %q", i, m.Payload)
				}
			}
			t.Logf("QoS %d: up to %d of %d publishes in flight at once", qos, most, n)
		})
	}
}

// silentBroker accepts MQTT connections, answers each CONNECT with a CONNACK and then
// never answers anything: publishes stay in flight. Its connections come out on conns.
func silentBroker(t *testing.T) (url string, conns <-chan net.Conn, ln net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 16)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := nc.Read(make([]byte, 1024)); err != nil { // the CONNECT, in one piece on loopback
				nc.Close()
				continue
			}
			nc.Write([]byte{0x20, 0x02, 0x00, 0x00}) // CONNACK, accepted
			go io.Copy(io.Discard, nc)               // ends when the test closes nc
			ch <- nc
		}
	}()
	return "tcp://" + ln.Addr().String(), ch, ln
}

// TestPublishAsyncToldAtLossAndClose: with a clean session, flights on a connection that
// drops are told the loss, once each; a publish that cannot be handed over returns
// ErrNotSent and is never told; Close tells what is still in flight.
func TestPublishAsyncToldAtLossAndClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	url, conns, ln := silentBroker(t)
	defer ln.Close()
	down := make(chan struct{}, 4)
	c := dial(t, Config{Options: mqttconn.Options{Broker: url, ConnectTimeout: 2 * time.Second,
		ReconnectBase: 20 * time.Millisecond, ReconnectCap: 50 * time.Millisecond,
		OnChange: func(up bool, _ error) {
			if !up {
				down <- struct{}{}
			}
		}}}, "async-loss")
	defer c.Close()
	first := <-conns
	o := &outcomes{told: map[int][]error{}, all: make(chan struct{}, 16)}
	for i := range 3 {
		if err := c.PublishAsync(context.Background(), "t", []byte("x"), 1, false, told{o, i}); err != nil {
			t.Fatal(err)
		}
	}
	first.Close() // the connection drops with three publishes in flight
	for i, errs := range o.wait(t, 3, 5*time.Second) {
		if len(errs) != 1 || !errors.Is(errs[0], errLost) {
			t.Errorf("publish %d in flight at the drop was told %v, want the loss once", i, errs)
		}
	}
	second := <-conns // reconnected
	for i := 10; i < 12; i++ {
		if err := c.PublishAsync(context.Background(), "t", []byte("x"), 2, false, told{o, i}); err != nil {
			t.Fatal(err)
		}
	}
	ln.Close()
	second.Close()
	<-down
	<-down
	// Down now, for good: a publish waits the connect timeout for the connection, then
	// returns ErrNotSent, and is never told.
	if err := c.PublishAsync(context.Background(), "t", []byte("x"), 1, false, told{o, 99}); !errors.Is(err, mqttconn.ErrNotSent) {
		t.Errorf("handing over while down: %v, want ErrNotSent", err)
	}
	for i, errs := range o.wait(t, 2, 5*time.Second) {
		if i >= 10 && (len(errs) != 1 || !errors.Is(errs[0], errLost)) {
			t.Errorf("publish %d was told %v, want the loss once", i, errs)
		}
	}
	c.Close()
	select {
	case <-o.all:
		t.Errorf("told more than once, or a publish never handed over was told: %v", o.told)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestPublishAsyncAbandon: Abandon tells the publishes in flight its error at once; their
// flights stay until the connection ends them, and are not told again.
func TestPublishAsyncAbandon(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	url, conns, ln := silentBroker(t)
	defer ln.Close()
	c := dial(t, Config{Options: mqttconn.Options{Broker: url}}, "async-abandon")
	nc := <-conns
	defer nc.Close()
	o := &outcomes{told: map[int][]error{}, all: make(chan struct{}, 16)}
	for i := range 3 {
		if err := c.PublishAsync(context.Background(), "t", []byte("x"), 1, false, told{o, i}); err != nil {
			t.Fatal(err)
		}
	}
	c.Abandon(context.Canceled)
	for i, errs := range o.wait(t, 3, 5*time.Second) {
		if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
			t.Errorf("publish %d was told %v at Abandon, want context.Canceled once", i, errs)
		}
	}
	c.mu.Lock()
	left := len(c.flights)
	c.mu.Unlock()
	if left != 3 {
		t.Errorf("%d flights left in the session, want the 3 abandoned", left)
	}
	c.Close()
	select {
	case <-o.all:
		t.Errorf("an abandoned publish was told again at Close: %v", o.told)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestPublishAsyncToldAtClose: Close tells the publishes still in flight, once each.
func TestPublishAsyncToldAtClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	url, conns, ln := silentBroker(t)
	defer ln.Close()
	c := dial(t, Config{Options: mqttconn.Options{Broker: url}, Window: 8}, "async-close")
	nc := <-conns
	defer nc.Close()
	o := &outcomes{told: map[int][]error{}, all: make(chan struct{}, 16)}
	for i := range 5 {
		if err := c.PublishAsync(context.Background(), "t", []byte("x"), 1, false, told{o, i}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	for i, errs := range o.wait(t, 5, 5*time.Second) {
		if len(errs) != 1 || !errors.Is(errs[0], errClosed) {
			t.Errorf("publish %d in flight at Close was told %v, want errClosed once", i, errs)
		}
	}
}
