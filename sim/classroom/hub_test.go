package classroom

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

// start runs a Hub until the test ends, and checks that Run returned.
func start(t *testing.T, o Options) *Hub {
	t.Helper()
	h := NewHub(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// next decodes v's next message, failing after a while.
func next(t *testing.T, v *Viewer) map[string]any {
	t.Helper()
	select {
	case b, ok := <-v.C:
		if !ok {
			t.Fatal("viewer closed")
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	return nil
}

// nextOf is v's next message of type typ: the snapshot a viewer joined with may precede
// the last of smartHome's events, which then come first.
func nextOf(t *testing.T, v *Viewer, typ string) map[string]any {
	t.Helper()
	for {
		if m := next(t, v); m["type"] == typ {
			return m
		}
	}
}

// smartHome feeds h a bulb and a phone behind one fleet connection, and a mosquitto_sub.
func smartHome(h *Hub) {
	h.DeviceAdded(sim.DeviceConfig{Home: 1, ID: "bulb-1", Kind: "bulb", Topic: "home/1/bulb/bulb-1"})
	h.DeviceAdded(sim.DeviceConfig{Home: 1, ID: "phone-1", Kind: "phone", Topic: "home/1/phone/phone-1"})
	h.DeviceSubscribed(1, "bulb-1", "home/1/phone/+/position")
	h.DeviceState(1, "bulb-1", "on")
	h.ClientConnected("fleetsim-abc-1", "")
	h.Subscribed("fleetsim-abc-1", []string{"home/1/phone/+/position"})
	h.ClientConnected("student", "alice")
	h.Subscribed("student", []string{"home/#"})
}

// watch joins h once the snapshot has smartHome's devices and clients.
func watch(t *testing.T, h *Hub) *Viewer {
	t.Helper()
	smartHome(h)
	// The Hub takes events and viewers in whatever order they come: watch until the
	// snapshot has them all.
	var v *Viewer
	for deadline := time.Now().Add(5 * time.Second); ; {
		v = h.Watch(context.Background())
		snap := next(t, v)
		if len(snap["devices"].([]any)) == 2 && len(snap["clients"].([]any)) == 2 {
			break
		}
		v.Close()
		if time.Now().After(deadline) {
			t.Fatalf("snapshot = %v", snap)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(v.Close)
	return v
}

// A view of the embedded broker draws the deliveries the broker tells, each with the
// filter that matched, joined to their publish; it works none out itself.
func TestHubDeliveriesWithTheirFilters(t *testing.T) {
	h := start(t, Options{})
	v := watch(t, h)
	h.Published("fleetsim-abc-1", "home/1/phone/phone-1/position", 1, true, []byte(`{"away":true}`))
	msg := nextOf(t, v, "msg")["msg"].(map[string]any)
	to, _ := json.Marshal(msg["to"])
	if msg["from"] != "d:1/phone-1" || string(to) != "[]" || msg["retained"] != true || msg["payload"] != `{"away":true}` {
		t.Errorf("msg from %v to %s, want d:1/phone-1 to []; %v", msg["from"], to, msg)
	}
	// The broker delivered it to the student and to the fleet connection the bulb rides.
	h.Delivered("student", "fleetsim-abc-1", "home/1/phone/phone-1/position", 1, false, nil)
	h.Delivered("fleetsim-abc-1", "fleetsim-abc-1", "home/1/phone/phone-1/position", 1, false, nil)
	var got []string
	for range 2 {
		d := nextOf(t, v, "delivery")
		to, _ := json.Marshal(d["to"])
		got = append(got, fmt.Sprintf("%v seq=%v %s", d["type"], d["seq"], to))
	}
	want := []string{
		fmt.Sprintf(`delivery seq=%v [{"filter":"home/#","node":"c:student"}]`, msg["seq"]),
		fmt.Sprintf(`delivery seq=%v [{"filter":"home/1/phone/+/position","node":"d:1/bulb-1"}]`, msg["seq"]),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("deliveries\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// An outsider's publish comes from its own node.
	h.Published("mosquitto_pub-1", "home/1/heater/setpoint", 0, false, []byte("23"))
	if msg := nextOf(t, v, "msg")["msg"].(map[string]any); msg["from"] != "c:mosquitto_pub-1" {
		t.Errorf("outsider's msg = %v", msg)
	}
}

// A viewer that reads nothing loses what does not fit its queue, is told how much, and
// never holds up the Hub or the other viewers.
func TestStalledViewerDropsAndIsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Options{AnimateLimit: 1 << 30})
		ctx := t.Context()
		stalled := h.Watch(ctx)
		reader := h.Watch(ctx)
		<-reader.C // snapshots
		got := 0
		go func() {
			for range reader.C {
				got++
			}
		}()
		const n = 3 * viewerQueue
		for i := range n {
			h.Published("c", "t", 0, false, []byte{byte(i)})
			synctest.Wait() // the Hub has taken it: the queue never overflows here
		}
		if lost := stalled.Lost(); lost != n-(viewerQueue-1) {
			t.Errorf("stalled viewer lost %d, want %d", lost, n-(viewerQueue-1))
		}
		if got != n {
			t.Errorf("the reading viewer got %d of %d", got, n)
		}
		if s := h.Stats(); s.ViewerDropped != int64(n-(viewerQueue-1)) || s.Viewers != 2 || s.QueueDropped != 0 {
			t.Errorf("stats = %+v", s)
		}
		stalled.Close()
		reader.Close()
		synctest.Wait()
		if s := h.Stats(); s.Viewers != 0 {
			t.Errorf("viewers after close = %d", s.Viewers)
		}
	})
}

// The Hub's own queue never blocks a publisher: past it events are dropped and counted.
func TestQueueFullDropsWithoutBlocking(t *testing.T) {
	h := NewHub(Options{}) // not running: nothing drains the queue
	for range queueSize + 10 {
		h.ClientConnected("c", "")
	}
	if s := h.Stats(); s.QueueDropped != 10 {
		t.Errorf("queue dropped %d, want 10", s.QueueDropped)
	}
}

// Above the animation limit the Hub sends rates per edge once a second instead.
func TestAggregatesAboveTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Options{AnimateLimit: 10})
		ctx := t.Context()
		smartHome(h)
		synctest.Wait()
		v := h.Watch(ctx)
		<-v.C
		burst := func() {
			for range 50 {
				h.Published("fleetsim-abc-1", "home/1/phone/phone-1/position", 0, false, []byte(`{}`))
				h.Delivered("student", "fleetsim-abc-1", "home/1/phone/phone-1/position", 0, false, nil)
				h.Delivered("fleetsim-abc-1", "fleetsim-abc-1", "home/1/phone/phone-1/position", 0, false, nil)
				synctest.Wait()
			}
		}
		burst()
		time.Sleep(time.Second)
		synctest.Wait()
		if got := h.sampleEvery.Load(); got != 10 { // 50/s against a limit of 10: one in 10
			t.Errorf("sampling one in %d, want 10", got)
		}
		burst() // now aggregated, from a sample
		time.Sleep(time.Second)
		synctest.Wait()
		var msgs int
		var rates []map[string]any
		for len(v.C) > 0 {
			var m map[string]any
			_ = json.Unmarshal(<-v.C, &m)
			switch m["type"] {
			case "msg":
				msgs++
			case "rates":
				rates = append(rates, m)
			}
		}
		if got := h.deliverEvery.Load(); got != 5 { // 100/s against 4 × 10: one in 5
			t.Errorf("sampling deliveries one in %d, want 5", got)
		}
		if msgs != 50 || len(rates) != 2 {
			t.Fatalf("msgs %d, rates %v", msgs, rates)
		}
		edges := rates[1]["edges"].([]any)
		if rates[1]["per_sec"] != 50.0 || len(edges) != 3 || edges[0].(map[string]any)["n"] != 50.0 {
			t.Errorf("rates = %v", rates[1])
		}
	})
}

// Without viewers the Hub takes only a few publishes a second: enough for a later
// viewer's snapshot, nothing that costs a load run.
func TestIdleHubTakesFewPublishes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Options{})
		ctx := t.Context()
		synctest.Wait()
		taken := 0
		for i := range 1000 {
			if h.Watching() {
				h.Published("c", "t/"+string(rune('a'+i%26)), 0, false, nil)
				taken++
			}
		}
		synctest.Wait()
		v := h.Watch(ctx)
		var snap Snapshot
		if err := json.Unmarshal(<-v.C, &snap); err != nil {
			t.Fatal(err)
		}
		if taken != idlePerSecond || len(snap.Last) != 26 {
			t.Errorf("took %d publishes (want %d), snapshot has %d topics (want 26)", taken, idlePerSecond, len(snap.Last))
		}
	})
}

// A retained message the broker sends a subscriber goes from the broker to that one
// client (or the devices behind it); a dropped one is told.
func TestRetainedAndDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Options{})
		ctx := t.Context()
		smartHome(h)
		synctest.Wait()
		v := h.Watch(ctx)
		<-v.C
		h.Delivered("student", "fleetsim-abc-1", "home/1/bulb/bulb-1/state", 1, true, []byte(`{"state":"on"}`))
		h.Delivered("fleetsim-abc-1", "fleetsim-abc-1", "home/1/phone/phone-1/position", 1, true, []byte(`{"away":false}`))
		h.Dropped("student", "home/1/bulb/bulb-1/state")
		synctest.Wait()
		var got []string
		for len(v.C) > 0 {
			var m struct {
				Type  string
				Msg   Msg
				Topic string
			}
			_ = json.Unmarshal(<-v.C, &m)
			to, _ := json.Marshal(m.Msg.To)
			got = append(got, m.Type+" "+m.Msg.From+" "+string(to)+" "+m.Topic)
		}
		want := []string{
			`msg broker [{"node":"c:student","filter":"home/#"}] `,
			`msg broker [{"node":"d:1/bulb-1","filter":"home/1/phone/+/position"}] `,
			`dropped  null home/1/bulb/bulb-1/state`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// Against an external broker the view is told no deliveries: it draws each publish to
// every subscription it knows that matches, as it always did there.
func TestInferredDeliveries(t *testing.T) {
	h := start(t, Options{InferDeliveries: true})
	v := watch(t, h)
	h.Published("", "home/1/phone/phone-1/position", 1, true, []byte(`{"away":true}`))
	msg := nextOf(t, v, "msg")["msg"].(map[string]any)
	to, _ := json.Marshal(msg["to"])
	want := `[{"filter":"home/#","node":"c:student"},{"filter":"home/1/phone/+/position","node":"d:1/bulb-1"}]`
	if msg["from"] != "d:1/phone-1" || string(to) != want {
		t.Errorf("msg from %v to %s, want d:1/phone-1 to %s", msg["from"], to, want)
	}
}

// A shared subscription's delivery is drawn to the member the broker chose, with the
// "$share/" filter that matched.
func TestSharedDeliveryNamesItsFilter(t *testing.T) {
	h := start(t, Options{})
	v := watch(t, h)
	h.ClientConnected("worker-b", "")
	h.Subscribed("worker-b", []string{"$share/g/home/+/heater/#"})
	h.Published("x", "home/1/heater/heater-1/state", 0, false, nil)
	nextOf(t, v, "msg")
	h.Delivered("worker-b", "x", "home/1/heater/heater-1/state", 0, false, nil)
	d := nextOf(t, v, "delivery")
	to, _ := json.Marshal(d["to"])
	if d["type"] != "delivery" || string(to) != `[{"filter":"$share/g/home/+/heater/#","node":"c:worker-b"}]` {
		t.Errorf("delivery = %v %s", d, to)
	}
}

// The broker calls Delivered for every message it writes: with nobody watching, or when
// sampling skips it, that costs no allocation.
func TestDeliveredAllocatesNothingItSkips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Options{})
		ctx := t.Context()
		synctest.Wait()
		payload := []byte(`{"celsius":21.5}`)
		deliver := func() {
			h.Delivered("fleetsim-a-1", "fleetsim-a-2", "home/1/sensor/s-1/temperature", 1, false, payload)
		}
		if n := testing.AllocsPerRun(1000, deliver); n != 0 {
			t.Errorf("%v allocations per delivery with no viewer", n)
		}
		v := h.Watch(ctx)
		<-v.C
		h.deliverEvery.Store(1 << 40) // sampling: skip all but one in 2^40
		if n := testing.AllocsPerRun(1000, deliver); n != 0 {
			t.Errorf("%v allocations per delivery sampling skips", n)
		}
		if s := h.Stats(); s.QueueDropped != 0 || len(h.in) != 0 {
			t.Errorf("skipped deliveries reached the queue: %+v, %d queued", s, len(h.in))
		}
		v.Close()
	})
}
