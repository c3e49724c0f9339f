package devices

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// fakeIO records what a device does; the test feeds its inbox. With a bus, publishes are
// also delivered to the devices subscribed on it.
type fakeIO struct {
	mu                          sync.Mutex
	inbox                       chan sim.Message
	rnd                         *rand.Rand
	bus                         *bus
	pubs                        []sim.Message
	subs, states, says, rejects []string
	scheduled                   []string    // topics of publishes made with PublishAt
	dues                        []time.Time // and their due times
}

func newFake() *fakeIO {
	return &fakeIO{inbox: make(chan sim.Message, 256), rnd: rand.New(rand.NewPCG(1, 2))}
}

func (f *fakeIO) Publish(_ context.Context, topic string, payload []byte, qos byte, retained bool) error {
	m := sim.Message{Topic: topic, Payload: payload, QoS: qos, Retained: retained}
	f.record(func() { f.pubs = append(f.pubs, m) })
	f.bus.publish(m)
	return nil
}

func (f *fakeIO) PublishAt(ctx context.Context, due time.Time, topic string, payload []byte, qos byte, retained bool) error {
	f.record(func() {
		f.scheduled = append(f.scheduled, topic)
		f.dues = append(f.dues, due)
	})
	return f.Publish(ctx, topic, payload, qos, retained)
}

func (f *fakeIO) SleepUntil(ctx context.Context, t time.Time) error { return sim.TimerSleep(ctx, t) }

func (f *fakeIO) Subscribe(_ context.Context, filter string, qos byte) (byte, error) {
	f.record(func() { f.subs = append(f.subs, filter) })
	f.bus.retained(f, filter)
	return qos, nil
}

func (f *fakeIO) Inbox() <-chan sim.Message { return f.inbox }
func (f *fakeIO) SetState(s string)         { f.record(func() { f.states = append(f.states, s) }) }
func (f *fakeIO) Say(line string)           { f.record(func() { f.says = append(f.says, line) }) }
func (f *fakeIO) Reject(topic string, err error) {
	f.record(func() { f.rejects = append(f.rejects, topic) })
}
func (f *fakeIO) Rand() *rand.Rand { return f.rnd }
func (f *fakeIO) record(do func()) { f.mu.Lock(); defer f.mu.Unlock(); do() }

// snapshot returns copies of what was recorded so far.
func (f *fakeIO) snapshot() (pubs []sim.Message, states, says, rejects []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(pubs, f.pubs...), append(states, f.states...), append(says, f.says...), append(rejects, f.rejects...)
}

// feed delivers a message to the device and waits until it has dealt with it.
func (f *fakeIO) feed(topic, payload string) {
	f.inbox <- sim.Message{Topic: topic, Payload: []byte(payload), QoS: 1}
	synctest.Wait()
}

// published returns the JSON payloads published on topic, decoded.
func (f *fakeIO) published(t *testing.T, topic string) []map[string]any {
	t.Helper()
	pubs, _, _, _ := f.snapshot()
	var out []map[string]any
	for _, m := range pubs {
		if m.Topic == topic {
			var v map[string]any
			if err := json.Unmarshal(m.Payload, &v); err != nil {
				t.Fatalf("%s: %q is not JSON: %v", topic, m.Payload, err)
			}
			out = append(out, v)
		}
	}
	return out
}

// bus is a tiny in-memory broker for tests that run several devices of one home.
type bus struct {
	mu   sync.Mutex
	ios  []*fakeIO
	kept map[string]sim.Message // retained messages
}

func (b *bus) publish(m sim.Message) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if m.Retained {
		b.kept[m.Topic] = m
	}
	for _, f := range b.ios {
		f.mu.Lock()
		subs := append([]string(nil), f.subs...)
		f.mu.Unlock()
		for _, s := range subs {
			if topic.Match(s, m.Topic) {
				deliver(f, m)
				break
			}
		}
	}
}

func (b *bus) retained(f *fakeIO, filter string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, m := range b.kept {
		if topic.Match(filter, name) {
			deliver(f, m)
		}
	}
}

// deliver drops the message when the inbox is full, as the engine does.
func deliver(f *fakeIO, m sim.Message) {
	select {
	case f.inbox <- m:
	default:
	}
}

// config is a device in home 1 whose day of 2 minutes starts at 06:00 now.
func config(kind, id string) sim.DeviceConfig {
	return sim.DeviceConfig{
		ID: id, Kind: kind, Home: 1, Prefix: "home/1", Topic: "home/1/" + kind + "/" + id,
		Period: time.Second, QoS: 1, Retained: true,
		Clock:  sim.Clock{WallStart: time.Now(), Start: 6 * time.Hour, Day: 2 * time.Minute},
		Shared: sim.NewShared(),
	}
}

// build builds a device of kind with its default params changed by set.
func build[P any](t *testing.T, cfg sim.DeviceConfig, set func(*P)) sim.Device {
	t.Helper()
	k := Kinds()[cfg.Kind]
	p := k.NewParams().(*P)
	if set != nil {
		set(p)
	}
	d, err := k.Build(cfg, p)
	if err != nil {
		t.Fatalf("build %s: %v", cfg.Kind, err)
	}
	return d
}

// run runs d until the test ends, then checks that Run returned nil once cancelled.
func run(t *testing.T, d sim.Device, f *fakeIO) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, f) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
	synctest.Wait()
}

// sleepUntil sleeps until just past simulated time of day hhmm on clock: 90 simulated
// seconds past, as the phone looks at its schedule once a simulated minute.
func sleepUntil(t *testing.T, c sim.Clock, hhmm string) {
	t.Helper()
	tod, err := sim.ParseTimeOfDay(hhmm)
	if err != nil {
		t.Fatal(err)
	}
	d := (tod - c.TimeOfDay(time.Now()) + 24*time.Hour) % (24 * time.Hour)
	time.Sleep(c.WallFor(d + 90*time.Second))
	synctest.Wait()
}

// lines returns the recorded Say lines containing s.
func lines(says []string, s string) []string {
	var out []string
	for _, l := range says {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
