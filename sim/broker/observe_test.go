package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/lean"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// recordingObserver records what the broker tells it, one line per call.
type recordingObserver struct {
	mu       sync.Mutex
	lines    []string
	watching bool
}

func (o *recordingObserver) add(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lines = append(o.lines, fmt.Sprintf(format, args...))
}

func (o *recordingObserver) ClientConnected(id, user string) { o.add("connect %s %q", id, user) }
func (o *recordingObserver) ClientDisconnected(id string)    { o.add("disconnect %s", id) }
func (o *recordingObserver) Subscribed(id string, f []string) {
	o.add("subscribe %s %v", id, f)
}
func (o *recordingObserver) Unsubscribed(id string, f []string) { o.add("unsubscribe %s %v", id, f) }
func (o *recordingObserver) Watching() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.watching
}
func (o *recordingObserver) Published(id, topic string, qos byte, retained bool, p []byte) {
	o.add("publish %s %s q%d r=%v %s", id, topic, qos, retained, p)
}
func (o *recordingObserver) Delivered(id, origin, topic string, qos byte, retained bool, p []byte) {
	o.add("deliver %s from %s %s q%d r=%v %s", id, origin, topic, qos, retained, p)
}

// count is how many lines the observer recorded that start with prefix.
func (o *recordingObserver) count(prefix string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, l := range o.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}
func (o *recordingObserver) Dropped(id, topic string) { o.add("dropped %s %s", id, topic) }

// waitFor waits until the observer has recorded line.
func (o *recordingObserver) waitFor(t *testing.T, line string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		o.mu.Lock()
		ok := slices.Contains(o.lines, line)
		lines := slices.Clone(o.lines)
		o.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("observer never told %q; told:\n%q", line, lines)
		}
	}
}

func TestObserverSeesClients(t *testing.T) {
	o := &recordingObserver{}
	b := start(t, Options{Observer: o})
	pub := connect(t, b.URL(), "pub")
	o.waitFor(t, `connect pub ""`)
	wait(t, pub.Publish("home/1/bulb/bulb-1/state", 1, true, "unwatched"), "publish")
	o.mu.Lock()
	o.watching = true
	o.mu.Unlock()
	wait(t, pub.Publish("home/1/bulb/bulb-1/state", 1, true, "on"), "publish")
	o.waitFor(t, "publish pub home/1/bulb/bulb-1/state q1 r=true on")

	late := connect(t, b.URL(), "late")
	subscribe(t, late, "home/+/bulb/#", 1)
	o.waitFor(t, "subscribe late [home/+/bulb/#]")
	o.waitFor(t, "deliver late from pub home/1/bulb/bulb-1/state q1 r=true on") // retained, on subscribe
	wait(t, late.Unsubscribe("home/+/bulb/#"), "unsubscribe")
	o.waitFor(t, "unsubscribe late [home/+/bulb/#]")

	if !b.Disconnect("late") {
		t.Error("Disconnect(late) = false")
	}
	o.waitFor(t, "disconnect late")
	if b.Disconnect("nobody") {
		t.Error("Disconnect(nobody) = true")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, l := range o.lines {
		if l == "publish pub home/1/bulb/bulb-1/state q1 r=true unwatched" {
			t.Error("told a publish while not watching")
		}
	}
}

// Deliveries are the broker's own: a shared subscription's message is told once, to the
// member mochi chose; a plain subscription's once per subscriber.
func TestObserverSeesEachDelivery(t *testing.T) {
	o := &recordingObserver{watching: true}
	b := start(t, Options{Observer: o})
	pub := connect(t, b.URL(), "pub")
	for _, id := range []string{"member-a", "member-b", "plain-c", "plain-d"} {
		c := connect(t, b.URL(), id)
		if strings.HasPrefix(id, "member") {
			subscribe(t, c, "$share/g/lab/shared", 1)
		} else {
			subscribe(t, c, "lab/plain", 1)
		}
		subscribe(t, c, "lab/marker", 1)
	}
	wait(t, pub.Publish("lab/shared", 1, false, "s"), "publish")
	wait(t, pub.Publish("lab/plain", 0, false, "p"), "publish")
	wait(t, pub.Publish("lab/marker", 1, false, "m"), "publish")
	// Each client's packets are written in order: once every client has its marker, all
	// it would get of the two messages before has been told.
	for _, id := range []string{"member-a", "member-b", "plain-c", "plain-d"} {
		o.waitFor(t, "deliver "+id+" from pub lab/marker q1 r=false m")
	}
	shared := o.count("deliver member-a from pub lab/shared") + o.count("deliver member-b from pub lab/shared")
	plain := o.count("deliver plain-c from pub lab/plain q0") + o.count("deliver plain-d from pub lab/plain q0")
	if shared != 1 || plain != 2 {
		t.Errorf("told %d deliveries of the shared message (want 1), %d of the plain one (want 2):\n%q", shared, plain, o.lines)
	}
}

// The hook runs for every packet the broker writes: when nobody watches it allocates
// nothing.
func TestObserveHookAllocatesNothingUnwatched(t *testing.T) {
	h := &observeHook{o: &recordingObserver{}}
	cl := &mqtt.Client{ID: "sub"}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "home/1/bulb/bulb-1/state",
		Origin: "pub", Payload: []byte(`{"state":"on"}`)}
	if n := testing.AllocsPerRun(1000, func() { h.OnPacketSent(cl, pk, nil) }); n != 0 {
		t.Errorf("%v allocations per delivery with nobody watching", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = h.OnPublish(cl, pk) }); n != 0 {
		t.Errorf("%v allocations per publish with nobody watching", n)
	}
	// Under a topic alias: named once (noted), then the alias alone.
	pk.Properties.TopicAlias = 1
	h.OnPacketSent(cl, pk, nil)
	named, alone := pk, pk
	alone.TopicName = ""
	if n := testing.AllocsPerRun(1000, func() { h.OnPacketSent(cl, named, nil); h.OnPacketSent(cl, alone, nil) }); n != 0 {
		t.Errorf("%v allocations per aliased delivery with nobody watching", n)
	}
}

// noReceiver takes the messages a lean subscriber gets, and drops them.
type noReceiver struct{}

func (noReceiver) Deliver(sim.Message) {}

// To an MQTT 5 client that takes topic aliases (lean does) mochi names a topic once, then
// sends its alias alone: each delivery is still told with its topic.
func TestObserverNamesAliasedDeliveries(t *testing.T) {
	o := &recordingObserver{watching: true}
	b := start(t, Options{Observer: o})
	ctx := context.Background()
	dial := func(id string) *lean.Conn {
		c, err := lean.Dial(ctx, lean.Config{Options: mqttconn.Options{Broker: b.URL(), ConnectTimeout: 5 * time.Second},
			Protocol: lean.MQTT5}, id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	sub, pub := dial("sub5"), dial("pub5")
	if _, err := sub.Subscribe(ctx, "lab/#", 1, noReceiver{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"1", "2", "3"} {
		if err := pub.Publish(ctx, "lab/aliased", []byte(p), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"1", "2", "3"} {
		o.waitFor(t, "deliver sub5 from pub5 lab/aliased q1 r=false "+p)
	}
}
