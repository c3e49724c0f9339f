package mqttconn

import (
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
