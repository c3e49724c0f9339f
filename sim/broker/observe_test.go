package broker

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
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
func (o *recordingObserver) RetainedSent(id, topic string, qos byte, p []byte) {
	o.add("retained %s %s q%d %s", id, topic, qos, p)
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
	o.waitFor(t, "retained late home/1/bulb/bulb-1/state q1 on")
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
