package devices

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/fleetsim/fleetsim/sim"
)

// badPayloads are payloads no device topic accepts.
var badPayloads = map[string]string{
	"empty":        "",
	"truncated":    "{",
	"null":         "null",
	"array":        "[]",
	"string":       `"on"`,
	"binary":       "\x00\x01\xfe\xff\x89PNG",
	"NaN":          "NaN",
	"overflow":     "1e999",
	"nulls":        `{"away":null,"on":null,"armed":null,"clean":null,"celsius":null,"location":null}`,
	"wrong types":  `{"away":"no","on":"yes","armed":1,"clean":"true","celsius":"22","location":7}`,
	"out of range": `{"celsius":1e6,"location":"indoor"}`,
	"1 MB":         `{"away":false,"on":true,"armed":true,"clean":true,"celsius":22,"location":"indoor","pad":"` + strings.Repeat("x", 1<<20) + `"}`,
}

// start builds a device of kind with default params (a client subscribes to everything)
// and runs it until the test ends.
func start(t *testing.T, kind string) (*fakeIO, sim.DeviceConfig) {
	cfg := config(kind, kind+"-1")
	k := Kinds()[kind]
	p := k.NewParams()
	if c, ok := p.(*ClientParams); ok {
		c.Subscribe = []ClientSubscribe{{Filter: "#"}}
	}
	d, err := k.Build(cfg, p)
	if err != nil {
		t.Fatalf("build %s with defaults: %v", kind, err)
	}
	f := newFake()
	run(t, d, f)
	return f, cfg
}

// topicsOf returns a topic matching each filter the device subscribed to, and always its
// own base topic (which none of them subscribes to).
func topicsOf(f *fakeIO, cfg sim.DeviceConfig) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	topics := []string{cfg.Topic}
	for _, s := range f.subs {
		topics = append(topics, strings.NewReplacer("+", "x", "#", "x").Replace(s))
	}
	return topics
}

func TestGarbageIsRejected(t *testing.T) {
	for kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, cfg := start(t, kind)
				_, before, said, _ := f.snapshot()
				topics := topicsOf(f, cfg)
				for _, topic := range topics {
					for name, payload := range badPayloads {
						f.feed(topic, payload)
						if _, states, _, _ := f.snapshot(); !slices.Equal(states, before) {
							t.Fatalf("%s on %s changed the state to %q", name, topic, states)
						}
					}
				}
				_, _, says, rejects := f.snapshot()
				if kind == "client" { // it prints anything, and rejects nothing
					if len(rejects) != 0 || len(says) != len(said)+len(topics)*len(badPayloads) {
						t.Errorf("client: %d rejects, %d lines", len(rejects), len(says)-len(said))
					}
					return
				}
				if kind == "load" { // it subscribes to nothing, so the engine brings it nothing
					if len(topics) != 1 || len(rejects) != 0 || len(says) != len(said) {
						t.Errorf("load: %d subscriptions, %d rejects, %d lines", len(topics)-1, len(rejects), len(says)-len(said))
					}
					return
				}
				if kind == "sink" { // it takes anything: measuring is the engine's job
					if len(rejects) != 0 || len(says) != len(said) {
						t.Errorf("sink: %d rejects, %d lines", len(rejects), len(says)-len(said))
					}
					return
				}
				if len(rejects) != len(topics)*len(badPayloads) || len(says) != len(said) {
					t.Errorf("%d rejects, want %d; said %q", len(rejects), len(topics)*len(badPayloads), says[len(said):])
				}
			})
		})
	}
}

func TestParamErrorsNameTheField(t *testing.T) {
	cases := []struct {
		kind, field string
		set         func(p any)
	}{
		{"phone", "leave", func(p any) { p.(*PhoneParams).Leave = "8am" }},
		{"phone", "return", func(p any) { p.(*PhoneParams).Return = "24:00" }},
		{"phone", "return", func(p any) { p.(*PhoneParams).Return = "08:00" }},
		{"phone", "setpoints", func(p any) { p.(*PhoneParams).Setpoints = []PhoneSetpoint{{At: "21:60", Celsius: 20}} }},
		{"phone", "setpoints", func(p any) { p.(*PhoneParams).Setpoints = []PhoneSetpoint{{At: "21:00", Celsius: 40}} }},
		{"heater", "setpoint", func(p any) { p.(*HeaterParams).Setpoint = 50 }},
		{"heater", "cold_below", func(p any) { p.(*HeaterParams).ColdBelow = 100 }},
		{"heater", "hysteresis", func(p any) { p.(*HeaterParams).Hysteresis = -1 }},
		{"heater", "power_w", func(p any) { p.(*HeaterParams).PowerW = 0 }},
		{"camera", "snapshot_bytes", func(p any) { p.(*CameraParams).SnapshotBytes = 2 << 20 }},
		{"camera", "snapshot_bytes", func(p any) { p.(*CameraParams).SnapshotBytes = -1 }},
		{"vacuum", "clean_for", func(p any) { p.(*VacuumParams).CleanFor = "soon" }},
		{"vacuum", "clean_for", func(p any) { p.(*VacuumParams).CleanFor = "0s" }},
		{"sensor", "location", func(p any) { p.(*SensorParams).Location = "attic" }},
		{"sensor", "format", func(p any) { p.(*SensorParams).Format = "xml" }},
		{"sensor", "celsius", func(p any) { p.(*SensorParams).Celsius = 1000 }},
		{"sensor", "spread", func(p any) { p.(*SensorParams).Spread = -1 }},
		{"client", "subscribe", func(p any) { p.(*ClientParams).Subscribe = []ClientSubscribe{{Filter: ""}} }},
		{"client", "subscribe", func(p any) { p.(*ClientParams).Subscribe = []ClientSubscribe{{Filter: "a/#/b"}} }},
		{"client", "subscribe", func(p any) { p.(*ClientParams).Subscribe = []ClientSubscribe{{Filter: "a", QoS: 3}} }},
		{"client", "subscribe", func(p any) { p.(*ClientParams).Subscribe = []ClientSubscribe{{Filter: "$share/g+/a"}} }},
		{"client", "subscribe", func(p any) { p.(*ClientParams).Subscribe = []ClientSubscribe{{Filter: "$share/g"}} }},
		{"client", "publish", func(p any) { p.(*ClientParams).Publish = []ClientPublish{{Topic: "a/+"}} }},
		{"client", "publish", func(p any) { p.(*ClientParams).Publish = []ClientPublish{{Topic: "a", Every: "often"}} }},
		{"client", "publish", func(p any) { p.(*ClientParams).Publish = []ClientPublish{{Topic: "a", Count: 5}} }},
	}
	for _, c := range cases {
		k := Kinds()[c.kind]
		p := k.NewParams()
		c.set(p)
		_, err := k.Build(config(c.kind, "x-1"), p)
		var pe *sim.ParamError
		if !errors.As(err, &pe) || pe.Field != c.field || !strings.HasPrefix(err.Error(), "params."+c.field+": ") {
			t.Errorf("%s: got %v, want a ParamError on %s", c.kind, err, c.field)
		}
	}
	for name, k := range Kinds() {
		if _, err := k.Build(config(name, "x-1"), k.NewParams()); err != nil {
			t.Errorf("%s with defaults: %v", name, err)
		}
	}
}

// FuzzDevicesPayload feeds arbitrary bytes on every subscribed topic of every kind.
// Nothing may panic, and every device must return once cancelled.
func FuzzDevicesPayload(f *testing.F) {
	for _, p := range badPayloads {
		if len(p) < 1000 {
			f.Add([]byte(p))
		}
	}
	for _, p := range []string{`{"away":true}`, `{"id":"p","away":false}`, `{"on":true}`, "22", `{"celsius":22}`,
		`{"location":"outdoor","celsius":3}`, `{"armed":false}`, `{"clean":true}`} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		synctest.Test(t, func(t *testing.T) {
			for kind := range Kinds() {
				f, cfg := start(t, kind)
				for _, topic := range topicsOf(f, cfg) {
					f.inbox <- sim.Message{Topic: topic, Payload: payload}
				}
				synctest.Wait()
			}
		})
	})
}

func TestPresenceIsBounded(t *testing.T) {
	p := presence{}
	for i := range maxPhones + 10 {
		_, err := p.update(sim.Message{Topic: "home/1/phone/x/position", Payload: []byte(fmt.Sprintf(`{"id":"p%d","away":true}`, i))})
		if (err != nil) != (i >= maxPhones) {
			t.Fatalf("phone %d: err = %v", i, err)
		}
	}
	if len(p) != maxPhones {
		t.Fatalf("presence holds %d phones, want %d", len(p), maxPhones)
	}
	// A known phone still updates once the table is full.
	if _, err := p.update(sim.Message{Topic: "t", Payload: []byte(`{"id":"p0","away":false}`)}); err != nil || !p.occupied() {
		t.Fatalf("known phone rejected: %v", err)
	}
}
