package broker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// lockedBuffer collects the broker's log; it is printed when a test fails.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start starts a broker on a free loopback port and closes it when the test ends.
func start(t *testing.T, opts Options) *Broker {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	logs := new(lockedBuffer)
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", logs)
		}
	})
	return b
}

// connect connects a paho client to url and disconnects it when the test ends.
func connect(t *testing.T, url, id string) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(id).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	wait(t, c.Connect(), "connect to "+url)
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func wait(t *testing.T, tok paho.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// subscribe subscribes c to filter and returns the channel its messages arrive on.
func subscribe(t *testing.T, c paho.Client, filter string, qos byte) <-chan paho.Message {
	t.Helper()
	ch := make(chan paho.Message, 100)
	wait(t, c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) { ch <- m }), "subscribe "+filter)
	// mochi sends SUBACK before the retained messages for the filter, so a publish right
	// after SUBACK could arrive both live and as retained. It handles a client's packets
	// in order, so once a later UNSUBACK arrives the subscription is fully set up.
	wait(t, c.Unsubscribe("fleetsim/test/barrier"), "unsubscribe")
	return ch
}

func receive(t *testing.T, ch <-chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return nil
	}
}

// eventually fails the test unless cond becomes true within 5 seconds.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

func TestPublishSubscribe(t *testing.T) {
	b := start(t, Options{})
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") || strings.HasSuffix(b.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want 127.0.0.1 and a real port", b.Addr())
	}
	if b.URL() != "tcp://"+b.Addr() {
		t.Errorf("URL() = %q", b.URL())
	}
	if b.WSURL() != "" {
		t.Errorf("WSURL() = %q without a websocket listener", b.WSURL())
	}

	sub := connect(t, b.URL(), "sub")
	msgs := subscribe(t, sub, "home/+/bulb/#", 1)
	pub := connect(t, b.URL(), "pub")
	for qos := byte(0); qos <= 1; qos++ {
		topic := fmt.Sprintf("home/1/bulb/bulb-%d/state", qos)
		payload := fmt.Sprintf(`{"qos":%d}`, qos)
		wait(t, pub.Publish(topic, qos, false, payload), "publish")
		m := receive(t, msgs)
		if m.Topic() != topic || string(m.Payload()) != payload || m.Qos() != qos || m.Retained() {
			t.Errorf("got %s %q qos %d retained %v; want %s %q qos %d", m.Topic(), m.Payload(), m.Qos(), m.Retained(), topic, payload, qos)
		}
	}
	wait(t, pub.Publish("home/1/plug/plug-1/state", 1, false, "x"), "publish")
	wait(t, pub.Publish("home/1/bulb/bulb-9/state", 1, false, "last"), "publish")
	if m := receive(t, msgs); string(m.Payload()) != "last" {
		t.Errorf("a message not matching the filter was delivered: %s", m.Topic())
	}

	// mochi counts a message as sent after writing it, so the count may lag delivery.
	eventually(t, func() bool { return b.Stats().MessagesSent == 3 && b.Stats().Inflight == 0 })
	s := b.Stats()
	if s.ClientsConnected != 2 || s.Subscriptions != 1 || s.MessagesReceived != 4 || s.MessagesSent != 3 ||
		s.MessagesDropped != 0 || s.Inflight != 0 || s.BytesReceived == 0 || s.BytesSent == 0 {
		t.Errorf("Stats() = %+v", s)
	}
}

func TestRetainedForLateSubscriber(t *testing.T) {
	b := start(t, Options{})
	pub := connect(t, b.URL(), "pub")
	// mochi acknowledges a QoS 1 publish before delivering it to subscribers, so a client
	// subscribing right after the acknowledgement could also get it live. watch tells when
	// each publish has been delivered.
	watch := subscribe(t, connect(t, b.URL(), "watch"), "home/#", 1)
	publish := func(payload string) {
		t.Helper()
		wait(t, pub.Publish("home/1/thermostat/t-1/state", 1, true, payload), "publish")
		if m := receive(t, watch); string(m.Payload()) != payload {
			t.Fatalf("watch got %q (retained %v), want %q", m.Payload(), m.Retained(), payload)
		}
	}

	publish("21.5")
	before := b.Stats().Retained
	lateMsgs := subscribe(t, connect(t, b.URL(), "late"), "home/1/#", 1)
	m := receive(t, lateMsgs)
	if m.Topic() != "home/1/thermostat/t-1/state" || string(m.Payload()) != "21.5" || !m.Retained() {
		t.Errorf("got %s %q retained %v", m.Topic(), m.Payload(), m.Retained())
	}

	// A retained message with an empty payload removes it (MQTT 3.1.1 §3.3.1.3), so a
	// later subscriber gets nothing.
	publish("")
	if m := receive(t, lateMsgs); len(m.Payload()) != 0 || m.Retained() {
		t.Errorf("late got %q retained %v, want the empty clearing message live", m.Payload(), m.Retained())
	}
	if after := b.Stats().Retained; after != before-1 {
		t.Errorf("Stats().Retained went from %d to %d after clearing, want %d", before, after, before-1)
	}
	later := subscribe(t, connect(t, b.URL(), "later"), "home/1/#", 1)
	select {
	case m := <-later:
		t.Errorf("cleared retained message delivered: %s %q", m.Topic(), m.Payload())
	case <-time.After(200 * time.Millisecond):
	}
}

func TestWebsocket(t *testing.T) {
	b := start(t, Options{WSAddr: "127.0.0.1:0"})
	if !strings.HasPrefix(b.WSURL(), "ws://127.0.0.1:") || strings.HasSuffix(b.WSURL(), ":0") {
		t.Fatalf("WSURL() = %q", b.WSURL())
	}
	ws := connect(t, b.WSURL(), "ws-client")
	msgs := subscribe(t, ws, "home/#", 1)
	tcp := connect(t, b.URL(), "tcp-client")
	wait(t, tcp.Publish("home/2/door/d-1/state", 1, false, "open"), "publish over tcp")
	if m := receive(t, msgs); m.Topic() != "home/2/door/d-1/state" || string(m.Payload()) != "open" {
		t.Errorf("over ws got %s %q", m.Topic(), m.Payload())
	}
	back := subscribe(t, tcp, "back", 0)
	wait(t, ws.Publish("back", 0, false, "from ws"), "publish over ws")
	if m := receive(t, back); string(m.Payload()) != "from ws" {
		t.Errorf("over tcp got %q", m.Payload())
	}
	if got := b.Stats().ClientsConnected; got != 2 {
		t.Errorf("ClientsConnected = %d, want 2", got)
	}
}

func TestAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()

	_, err = Start(Options{Addr: addr})
	want := "embedded broker: listen " + addr + ": address already in use (is another broker running?)"
	if err == nil || err.Error() != want {
		t.Fatalf("Start on a taken port: %v\nwant: %s", err, want)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error does not wrap EADDRINUSE: %v", err)
	}
	var le *ListenError
	if !errors.As(err, &le) || le.WebSocket || le.Addr != addr {
		t.Errorf("error is not the TCP listener's ListenError: %#v", err)
	}

	// A taken websocket port fails Start too, and frees the TCP port it had bound.
	_, err = Start(Options{Addr: "127.0.0.1:0", WSAddr: addr})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), addr) || !errors.As(err, &le) || !le.WebSocket {
		t.Fatalf("Start with a taken websocket port: %v", err)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	b, err := Start(Options{Addr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	var clients []paho.Client
	for i, url := range []string{b.URL(), b.URL(), b.WSURL()} {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprint("c", i)).SetAutoReconnect(false))
		wait(t, c.Connect(), "connect")
		wait(t, c.Subscribe("x/#", 1, nil), "subscribe")
		clients = append(clients, c)
	}
	// Connections that never send CONNECT, over TCP and over a websocket.
	raw, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rawWS, _, err := (&websocket.Dialer{Subprotocols: []string{"mqtt"}}).Dial(b.WSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rawWS.Close()

	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s")
	}
	for _, c := range clients {
		c.Disconnect(0) // the broker has closed the connections; this stops paho's goroutines
	}
	raw.Close()
	rawWS.Close()
	if _, err := net.Dial("tcp", b.Addr()); err == nil {
		t.Error("the TCP port still accepts connections after Close")
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:1883": "127.0.0.1:1883",
		"0.0.0.0:1883":   "127.0.0.1:1883",
		"[::]:1883":      "[::1]:1883",
		":1883":          "127.0.0.1:1883",
		"[::1]:1883":     "[::1]:1883",
		"myhost:1883":    "myhost:1883",
		"garbage":        "garbage",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWebsocketTextFrameClosesConnection(t *testing.T) {
	b := start(t, Options{WSAddr: "127.0.0.1:0"})
	ws, resp, err := (&websocket.Dialer{Subprotocols: []string{"mqtt"}}).Dial(b.WSURL()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mqtt" {
		t.Errorf("subprotocol %q, want mqtt (MQTT 3.1.1 §6.0)", got)
	}
	// A CONNECT packet in a text frame must close the connection (§6.0).
	if err := ws.WriteMessage(websocket.TextMessage, connectPacket("text")); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := ws.ReadMessage(); err == nil {
		t.Fatalf("connection still open; got %x", msg)
	} else if isTimeout(err) {
		t.Fatal("connection not closed within 5s")
	}

	// The same CONNECT in a binary frame, split in two frames, is accepted.
	ws2, _, err := (&websocket.Dialer{Subprotocols: []string{"mqtt"}}).Dial(b.WSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.Close()
	pk := connectPacket("binary")
	for _, part := range [][]byte{pk[:3], pk[3:]} {
		if err := ws2.WriteMessage(websocket.BinaryMessage, part); err != nil {
			t.Fatal(err)
		}
	}
	_ = ws2.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, ack, err := ws2.ReadMessage()
	if err != nil || len(ack) != 4 || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK: %x, %v", ack, err)
	}
}

func TestConnectTimeout(t *testing.T) {
	defer func(d time.Duration) { connectTimeout = d }(connectTimeout)
	connectTimeout = 200 * time.Millisecond
	b := start(t, Options{})

	idle, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("a connection without CONNECT is still open: %v", err)
	}

	// A client that has connected keeps its connection past the CONNECT deadline.
	c := connect(t, b.URL(), "keeps")
	time.Sleep(2 * connectTimeout)
	wait(t, c.Publish("still/here", 1, false, "x"), "publish after the CONNECT deadline")
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// connectPacket is an MQTT 3.1.1 CONNECT (§3.1) with a clean session and a 60 s keepalive.
func connectPacket(id string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}
	body = append(body, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// TestCloseWhileClientsChurn closes the broker while clients connect and disconnect. That
// can deadlock mochi's own listener Close (mochi-mqtt/server issue #488), though its window
// is too narrow for this test to hit it reliably: a hang was seen in about one run of a
// thousand of TestRetainedForLateSubscriber before the listeners were replaced.
func TestCloseWhileClientsChurn(t *testing.T) {
	for round := range 5 {
		b, err := Start(Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
					if err != nil {
						continue // closed
					}
					_, _ = c.Write(connectPacket(fmt.Sprintf("churn-%d-%d", i, n)))
					_ = c.SetReadDeadline(time.Now().Add(time.Second))
					_, _ = c.Read(make([]byte, 4))
					c.Close()
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		closed := make(chan struct{})
		go func() { b.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close did not return within 10s", round)
		}
		close(stop)
		wg.Wait()
	}
}
