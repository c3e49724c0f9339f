package mqttconn

import (
	"slices"
	"testing"

	"github.com/fleetsim/fleetsim/sim"
)

// inbox is a fake Receiver that records the topics it got.
type inbox struct{ got []string }

func (b *inbox) Deliver(m sim.Message) { b.got = append(b.got, m.Topic) }

func TestDispatcherRoutesByFilter(t *testing.T) {
	var d Dispatcher
	bulb, heater, phone := &inbox{}, &inbox{}, &inbox{}

	d.Add("home/1/phone/+/position", bulb)
	d.Add("home/1/phone/+/position", heater)
	d.Add("home/1/sensor/+/temperature", heater)
	d.Add("home/1/sensor/#", heater) // overlaps the filter above: still one delivery
	d.Add("home/1/sensor/+/temperature", phone)
	d.Add("home/1/sensor/#", heater) // the same route again: no second delivery

	cases := []struct {
		topic string
		want  map[*inbox]int
	}{
		{"home/1/phone/phone-1/position", map[*inbox]int{bulb: 1, heater: 1}},
		{"home/1/sensor/outdoor-1/temperature", map[*inbox]int{heater: 1, phone: 1}},
		{"home/1/sensor/outdoor-1/battery", map[*inbox]int{heater: 1}},
		{"home/2/phone/phone-1/position", map[*inbox]int{}},
		{"home/1/phone/phone-1/position/extra", map[*inbox]int{}},
	}
	for _, c := range cases {
		bulb.got, heater.got, phone.got = nil, nil, nil
		n := d.Dispatch(sim.Message{Topic: c.topic})
		total := 0
		for b, name := range map[*inbox]string{bulb: "bulb", heater: "heater", phone: "phone"} {
			if got := len(b.got); got != c.want[b] {
				t.Errorf("%s: %s got %d deliveries, want %d", c.topic, name, got, c.want[b])
			}
			total += c.want[b]
		}
		if n != total {
			t.Errorf("%s: Dispatch reported %d receivers, want %d", c.topic, n, total)
		}
	}
}

// recorder is a Receiver that appends its name to a shared log, to see the order of turns.
type recorder struct {
	name string
	log  *[]string
}

func (r *recorder) Deliver(sim.Message) { *r.log = append(*r.log, r.name) }

func TestDispatcherSharedSubscriptionIsOneOfUs(t *testing.T) {
	var d Dispatcher
	var log []string
	a, b, c := &recorder{"a", &log}, &recorder{"b", &log}, &recorder{"c", &log}
	d.Add("$share/backend/t/#", a)
	d.Add("$share/backend/t/#", b)
	d.Add("$share/backend/t/#", a) // already a member: no second turn
	d.Add("t/#", c)                // a plain subscriber gets everything
	for range 5 {
		if n := d.Dispatch(sim.Message{Topic: "t/x"}); n != 2 {
			t.Errorf("Dispatch reported %d receivers, want 2 (c and one of a, b)", n)
		}
	}
	if n := d.Dispatch(sim.Message{Topic: "u/x"}); n != 0 { // no match: no turn taken
		t.Errorf("Dispatch of a topic nobody subscribed to reported %d receivers", n)
	}
	d.Dispatch(sim.Message{Topic: "t"})
	want := []string{"c", "a", "c", "b", "c", "a", "c", "b", "c", "a", "c", "b"}
	if !slices.Equal(log, want) {
		t.Errorf("deliveries %v, want %v (plain c, then a and b in turn)", log, want)
	}
}

func TestDispatcherSharedSubscriptionsRotateSeparately(t *testing.T) {
	var d Dispatcher
	var log []string
	a, b := &recorder{"a", &log}, &recorder{"b", &log}
	// Same group name, other filter: another subscription, with its own turns.
	for _, f := range []string{"$share/g/t/#", "$share/g/u/#"} {
		d.Add(f, a)
		d.Add(f, b)
	}
	for _, tp := range []string{"t/1", "u/1", "t/2", "u/2", "u/3"} {
		d.Dispatch(sim.Message{Topic: tp})
	}
	if want := []string{"a", "a", "b", "b", "a"}; !slices.Equal(log, want) {
		t.Errorf("deliveries %v, want %v", log, want)
	}
}

// TestDispatchForRoutesByTheSubscriptionsNamed: a copy sent for named subscriptions (MQTT
// 5 subscription identifiers) goes to their receivers only, a shared one's in turn.
func TestDispatchForRoutesByTheSubscriptionsNamed(t *testing.T) {
	var d Dispatcher
	var log []string
	plain, m1, m2, other := &recorder{"plain", &log}, &recorder{"m1", &log}, &recorder{"m2", &log}, &recorder{"other", &log}
	d.Add("t/#", plain)
	d.Add("$share/g/t/#", m1)
	d.Add("$share/g/t/#", m2)
	d.Add("t/+", other)
	for _, subs := range [][]string{{"t/#"}, {"$share/g/t/#"}, {"$share/g/t/#"}, {"t/#", "t/+"}, {"nobody/#"}} {
		d.DispatchFor(sim.Message{Topic: "t/x"}, subs)
	}
	if want := []string{"plain", "m1", "m2", "plain", "other"}; !slices.Equal(log, want) {
		t.Errorf("deliveries %v, want %v", log, want)
	}
}

func TestDispatcherDeliversOncePerDevice(t *testing.T) {
	var d Dispatcher
	var log []string
	a, b := &recorder{"a", &log}, &recorder{"b", &log}
	// a is both a plain subscriber and the group's only member here; b's shared filter
	// keeps "$share/h/x" literal inside.
	d.Add("t/#", a)
	d.Add("$share/g/t/+", a)
	d.Add("$share/g/$share/h/x", b)
	for _, tp := range []string{"t/1", "t/2", "x", "$share/h/x"} {
		d.Dispatch(sim.Message{Topic: tp})
	}
	if want := []string{"a", "a", "b"}; !slices.Equal(log, want) {
		t.Errorf("deliveries %v, want %v", log, want)
	}
}

func TestDispatchDoesNotAllocate(t *testing.T) {
	var d Dispatcher
	for range 4 {
		r := &counter{}
		d.Add("home/+/sensor/+/temperature", r)
		d.Add("$share/backend/home/+/sensor/#", r)
		d.Add("$share/audit/home/#", r)
	}
	m := sim.Message{Topic: "home/1/sensor/outdoor-1/temperature"}
	if allocs := testing.AllocsPerRun(100, func() { d.Dispatch(m) }); allocs != 0 {
		t.Errorf("Dispatch allocates %v times per message; want 0", allocs)
	}
}

// counter is a Receiver that only counts, so the benchmark measures the dispatcher.
type counter struct{ n int }

func (c *counter) Deliver(sim.Message) { c.n++ }

func BenchmarkDispatchPerHome(b *testing.B) {
	// A home's connection: seven devices, about a dozen routes.
	var d Dispatcher
	for i := range 7 {
		r := &counter{}
		d.Add("home/1/phone/+/position", r)
		if i%2 == 0 {
			d.Add("home/1/sensor/+/temperature", r)
		}
	}
	d.Add("home/1/heater/setpoint", &counter{})
	m := sim.Message{Topic: "home/1/sensor/outdoor-1/temperature"}
	b.ReportAllocs()
	for b.Loop() {
		d.Dispatch(m)
	}
}

func BenchmarkDispatchShared(b *testing.B) {
	// A backend connection: four devices split the homes' telemetry through a shared
	// subscription, and one of them also watches alerts with a plain one.
	var d Dispatcher
	for i := range 4 {
		r := &counter{}
		d.Add("$share/backend/home/+/sensor/+/temperature", r)
		if i == 0 {
			d.Add("home/+/alert", r)
		}
	}
	m := sim.Message{Topic: "home/1/sensor/outdoor-1/temperature"}
	b.ReportAllocs()
	for b.Loop() {
		d.Dispatch(m)
	}
}
