package devices

import (
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

const (
	phone1 = "home/1/phone/phone-1/position"
	phone2 = "home/1/phone/phone-2/position"
)

func TestPhoneSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("phone", "phone-1")
		f := newFake()
		run(t, build(t, cfg, func(p *PhoneParams) { p.Setpoints = []PhoneSetpoint{{At: "21:00", Celsius: 23}} }), f)

		state := f.published(t, cfg.Topic+"/state")
		pos := f.published(t, cfg.Topic+"/position")
		if len(state) != 1 || state[0]["state"] != "home" || state[0]["cause"] != "start" {
			t.Fatalf("initial state = %v", state)
		}
		p := pos[0]
		if p["away"] != false || p["distance_m"].(float64) > 50 || p["id"] != "phone-1" || p["sim_time"] != "06:00" {
			t.Errorf("initial position = %v", p)
		}
		if _, err := time.Parse(time.RFC3339Nano, p["time"].(string)); err != nil {
			t.Errorf("time: %v", err)
		}

		sleepUntil(t, cfg.Clock, "08:00")
		_, states, says, _ := f.snapshot()
		pos = f.published(t, cfg.Topic+"/position")
		if last := pos[len(pos)-1]; last["away"] != true || last["distance_m"].(float64) < 2000 {
			t.Errorf("position after leaving = %v", last)
		}
		f.mu.Lock()
		scheduled := slices.Clone(f.scheduled)
		f.mu.Unlock()
		// Every position report after the first comes on the period's schedule; the
		// extra one at 08:00 is the phone leaving, not scheduled.
		if n := slices.Index(scheduled, cfg.Topic+"/position"); n < 0 || len(scheduled) < len(pos)-2 {
			t.Errorf("%d of %d positions published on the schedule (PublishAt); want all but the first and the leave", len(scheduled), len(pos))
		}
		if want := []string{"home", "away"}; !slices.Equal(states, want) {
			t.Errorf("states = %q, want %q", states, want)
		}
		if want := "08:00 phone-1    away     (leaves at 08:00)"; says[len(says)-1] != want {
			t.Errorf("said %q, want %q", says[len(says)-1], want)
		}

		sleepUntil(t, cfg.Clock, "18:00")
		_, states, says, _ = f.snapshot()
		if states[len(states)-1] != "home" || says[len(says)-1] != "18:00 phone-1    home     (returns at 18:00)" {
			t.Errorf("at 18:00: states %q, said %q", states, says[len(says)-1])
		}

		for day := 1; day <= 2; day++ {
			sleepUntil(t, cfg.Clock, "21:00")
			sp := f.published(t, "home/1/heater/setpoint")
			if len(sp) != day || sp[day-1]["celsius"] != 23.0 {
				t.Fatalf("day %d: set points %v", day, sp)
			}
		}
		_, _, says, _ = f.snapshot()
		if got := lines(says, "set point"); len(got) != 2 || got[0] != "21:00 phone-1    set point 23.0 °C (on home/1/heater/setpoint)" {
			t.Errorf("set point lines = %q", got)
		}
	})
}

func TestPhoneAwayOverMidnight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("phone", "phone-1")
		f := newFake()
		run(t, build(t, cfg, func(p *PhoneParams) { p.Leave, p.Return = "22:00", "06:30" }), f)
		sleepUntil(t, cfg.Clock, "06:30")
		sleepUntil(t, cfg.Clock, "22:00")
		if _, states, _, _ := f.snapshot(); !slices.Equal(states, []string{"away", "home", "away"}) {
			t.Errorf("states = %q", states)
		}
	})
}

// The phone obeys {"away": bool} on its /set topic (the classroom view's "phone leaves"
// control) until the schedule next changes, then follows the schedule again.
func TestPhoneCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("phone", "phone-1")
		f := newFake()
		run(t, build[PhoneParams](t, cfg, nil), f)
		f.feed(cfg.Topic+"/set", `{"away":true}`)
		f.feed(cfg.Topic+"/set", `{"away":"yes"}`) // rejected
		sleepUntil(t, cfg.Clock, "07:00")          // an hour of position reports: still away
		pos := f.published(t, cfg.Topic+"/position")
		if last := pos[len(pos)-1]; last["away"] != true {
			t.Errorf("position an hour after the command = %v", last)
		}
		sleepUntil(t, cfg.Clock, "18:00") // leaves at 08:00 (already away), back at 18:00
		_, states, says, rejects := f.snapshot()
		if !slices.Equal(states, []string{"home", "away", "home"}) || len(rejects) != 1 {
			t.Errorf("states %q, rejects %q", states, rejects)
		}
		if want := "06:00 phone-1    away     (told, on home/1/phone/phone-1/set)"; !slices.Contains(says, want) {
			t.Errorf("said %q, want %q", says, want)
		}
	})
}

func TestPhoneTellsTemperatures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("phone", "phone-1")
		f := newFake()
		run(t, build[PhoneParams](t, cfg, nil), f)
		f.feed("home/1/sensor/sensor-1/temperature", `{"location":"indoor","celsius":19.5}`)
		f.feed("home/1/sensor/sensor-2/temperature", `{"location":"outdoor","celsius":3.2}`)
		f.feed("home/1/sensor/sensor-2/temperature", `{"location":"outdoor","celsius":3.3}`) // within the hour
		time.Sleep(cfg.Clock.WallFor(time.Hour))
		f.feed("home/1/sensor/sensor-2/temperature", `{"location":"outdoor","celsius":4}`)
		_, _, says, _ := f.snapshot()
		want := []string{
			"06:00 phone-1    indoor 19.5 °C, outdoor 3.2 °C (on home/1/sensor/+/temperature)",
			"07:00 phone-1    indoor 19.5 °C, outdoor 4.0 °C (on home/1/sensor/+/temperature)",
		}
		if got := lines(says, "indoor"); !slices.Equal(got, want) {
			t.Errorf("told %q, want %q", got, want)
		}
	})
}

func TestBulb(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("bulb", "bulb-1")
		f := newFake()
		run(t, build[NoParams](t, cfg, nil), f)
		steps := []struct {
			topic, payload, want string
		}{
			{phone1, `{"id":"phone-1","away":false}`, "on"},
			{phone2, `{"id":"phone-2","away":false}`, "on"},
			{phone1, `{"id":"phone-1","away":true}`, "on"}, // phone-2 still home
			{phone2, `{"away":true}`, "off"},               // id from the topic
			{cfg.Topic + "/set", `{"on":true}`, "on"},
			{phone2, `{"away":true}`, "on"}, // no change in presence: the command holds
			{phone1, `{"id":"phone-1","away":false}`, "on"},
		}
		for i, s := range steps {
			f.feed(s.topic, s.payload)
			if _, states, _, _ := f.snapshot(); states[len(states)-1] != s.want {
				t.Fatalf("step %d: state %q, want %q", i, states[len(states)-1], s.want)
			}
		}
		_, states, says, rejects := f.snapshot()
		if want := []string{"off", "on", "off", "on"}; !slices.Equal(states, want) || len(rejects) > 0 {
			t.Errorf("states %q (want %q), rejects %q", states, want, rejects)
		}
		if want := "06:00 bulb-1     off      (phone-2 left home, on home/1/phone/phone-2/position)"; says[2] != want {
			t.Errorf("said %q, want %q", says[2], want)
		}
		if st := f.published(t, cfg.Topic+"/state"); st[3]["cause"] != cfg.Topic+"/set" {
			t.Errorf("cause = %v", st[3]["cause"])
		}
		time.Sleep(cfg.Period)
		synctest.Wait()
		if tel := f.published(t, cfg.Topic+"/telemetry"); len(tel) != 1 || tel[0]["power_w"] != 9.0 {
			t.Errorf("telemetry = %v", tel)
		}
	})
}

func TestCamera(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("camera", "camera-1")
		f := newFake()
		run(t, build(t, cfg, func(p *CameraParams) { p.SnapshotBytes = 100 }), f)
		f.feed(phone1, `{"id":"phone-1","away":false}`)
		f.feed(phone2, `{"id":"phone-2","away":true}`)
		time.Sleep(2 * cfg.Period)
		if snaps := f.published(t, cfg.Topic+"/snapshot"); len(snaps) != 0 {
			t.Fatalf("snapshots while off: %d", len(snaps))
		}
		f.feed(phone1, `{"id":"phone-1","away":true}`)
		time.Sleep(2*cfg.Period + time.Millisecond)
		synctest.Wait()
		snaps := f.published(t, cfg.Topic+"/snapshot")
		if len(snaps) != 2 {
			t.Fatalf("%d snapshots while armed, want 2", len(snaps))
		}
		if img, err := base64.StdEncoding.DecodeString(snaps[0]["image"].(string)); err != nil || len(img) != 100 || snaps[0]["bytes"] != 100.0 {
			t.Errorf("snapshot image: %d bytes, %v", len(img), err)
		}
		f.feed(phone2, `{"id":"phone-2","away":false}`)
		f.feed(cfg.Topic+"/set", `{"armed":true}`)
		if _, states, _, _ := f.snapshot(); !slices.Equal(states, []string{"off", "armed", "off", "armed"}) {
			t.Errorf("states = %q", states)
		}
	})
}

func TestVacuum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("vacuum", "vacuum-1")
		f := newFake()
		run(t, build[VacuumParams](t, cfg, nil), f)
		f.feed(phone1, `{"id":"phone-1","away":true}`)
		time.Sleep(cfg.Clock.WallFor(89 * time.Minute))
		synctest.Wait()
		if _, states, _, _ := f.snapshot(); states[len(states)-1] != "cleaning" {
			t.Fatalf("states after 89 simulated minutes: %q", states)
		}
		status := f.published(t, cfg.Topic+"/status")
		if last := status[len(status)-1]; last["state"] != "cleaning" || last["battery_pct"].(float64) > 50 {
			t.Errorf("status while cleaning = %v", last)
		}
		time.Sleep(cfg.Clock.WallFor(2 * time.Minute))
		synctest.Wait()
		_, states, says, _ := f.snapshot()
		if states[len(states)-1] != "docked" || says[len(says)-1] != "07:30 vacuum-1   docked   (cleaned for 1h30m0s)" {
			t.Fatalf("after cleaning: states %q, said %q", states, says[len(says)-1])
		}
		f.feed(cfg.Topic+"/set", `{"clean":true}`)
		f.feed(phone1, `{"id":"phone-1","away":false}`) // someone home: docks at once
		_, states, _, _ = f.snapshot()
		if want := []string{"docked", "cleaning", "docked", "cleaning", "docked"}; !slices.Equal(states, want) {
			t.Errorf("states = %q, want %q", states, want)
		}
		if st := f.published(t, cfg.Topic+"/state"); st[4]["cause"] != phone1 || st[2]["cause"] != "timer" {
			t.Errorf("causes: %v, %v", st[2]["cause"], st[4]["cause"])
		}
	})
}

func TestHeater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("heater", "heater-1")
		f := newFake()
		run(t, build[HeaterParams](t, cfg, nil), f)
		outdoor, indoor := "home/1/sensor/sensor-2/temperature", "home/1/sensor/sensor-1/temperature"
		home := "home/1/heater/setpoint"
		steps := []struct {
			topic, payload, want string
		}{
			{outdoor, `{"location":"outdoor","celsius":3}`, "off"}, // nobody known home
			{phone1, `{"id":"phone-1","away":false}`, "on"},
			{outdoor, `{"location":"outdoor","celsius":10.2}`, "on"}, // within hysteresis
			{outdoor, `{"location":"outdoor","celsius":12}`, "off"},  // warm
			{outdoor, `{"location":"outdoor","celsius":3}`, "on"},
			{phone1, `{"id":"phone-1","away":true}`, "off"},
			{phone1, `{"id":"phone-1","away":false}`, "on"},
			{indoor, `{"location":"indoor","celsius":20.4}`, "on"},
			{indoor, `{"location":"indoor","celsius":20.6}`, "off"}, // warm enough
			{home, `{"celsius":22}`, "on"},                          // JSON set point
			{cfg.Topic + "/setpoint", " 18\n", "off"},               // bare number, own topic
			{home, `{"celsius":18}`, "off"},                         // the same again (a retained copy): no news
			{home, "40", "off"},                                     // out of range: rejected
			{indoor, `{"location":"fixed","celsius":1}`, "off"},     // not the home's: ignored
			{home, `{"celsius":4.9}`, "off"},                        // out of range: rejected
			{indoor, `{"location":"indoor","celsius":17}`, "on"},
		}
		for i, s := range steps {
			f.feed(s.topic, s.payload)
			if _, states, _, _ := f.snapshot(); states[len(states)-1] != s.want {
				t.Fatalf("step %d (%s): state %q, want %q", i, s.payload, states[len(states)-1], s.want)
			}
		}
		_, _, says, rejects := f.snapshot()
		if want := []string{home, home}; !slices.Equal(rejects, want) {
			t.Errorf("rejects = %q, want %q", rejects, want)
		}
		want := []string{
			"06:00 heater-1   set point 22.0 °C (on home/1/heater/setpoint)",
			"06:00 heater-1   on       (set point 22.0 °C, on home/1/heater/setpoint)",
			"06:00 heater-1   set point 18.0 °C (on home/1/heater/heater-1/setpoint)",
			"06:00 heater-1   off      (set point 18.0 °C, on home/1/heater/heater-1/setpoint)",
		}
		if got := says[len(says)-5 : len(says)-1]; !slices.Equal(got, want) {
			t.Errorf("said\n%q\nwant\n%q", got, want)
		}
		st := f.published(t, cfg.Topic+"/state")
		if last := st[len(st)-1]; last["on"] != true || last["setpoint"] != 18.0 || last["cause"] != indoor {
			t.Errorf("last state = %v", last)
		}
		if w := houseOf(cfg).heaters["heater-1"]; w != 2000 {
			t.Errorf("house heating = %v W, want 2000", w)
		}
		time.Sleep(cfg.Period)
		synctest.Wait()
		if tel := f.published(t, cfg.Topic+"/telemetry"); len(tel) != 1 || tel[0]["power_w"] != 2000.0 {
			t.Errorf("telemetry = %v", tel)
		}
	})
}

func TestSensorPlainAsTheSeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("sensor", "sensor-1")
		cfg.Topic = "TEMPERATURE"
		f := newFake()
		run(t, build(t, cfg, func(p *SensorParams) { p.Location, p.Format = "fixed", "plain" }), f)
		time.Sleep(2*cfg.Period + time.Millisecond)
		synctest.Wait()
		pubs, states, says, _ := f.snapshot()
		readings := lines(says, "Just published")
		if len(readings) != 3 || !slices.Equal(states, []string{"reading"}) {
			t.Fatalf("said %q, states %q", says, states)
		}
		var n int
		for _, m := range pubs {
			if m.Topic != "TEMPERATURE" {
				continue
			}
			v, err := strconv.ParseFloat(string(m.Payload), 64)
			if err != nil || v < 20 || v >= 21 || m.Retained {
				t.Errorf("reading %q: %v", m.Payload, err)
			}
			if want := "Just published " + string(m.Payload) + " to topic TEMPERATURE"; readings[n] != want {
				t.Errorf("said %q, want %q", readings[n], want)
			}
			n++
		}
		if n != 3 {
			t.Errorf("%d readings on TEMPERATURE, want 3", n)
		}
	})
}

func TestSensorReadsTheHouse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in, out := config("sensor", "sensor-1"), config("sensor", "sensor-2")
		out.Shared = in.Shared
		fin, fout := newFake(), newFake()
		run(t, build[SensorParams](t, in, nil), fin)
		run(t, build(t, out, func(p *SensorParams) { p.Location = "outdoor" }), fout)
		r := fin.published(t, in.Topic+"/temperature")
		if len(r) != 1 || r[0]["location"] != "indoor" || r[0]["celsius"] != StartIndoor {
			t.Errorf("indoor reading = %v", r)
		}
		r = fout.published(t, out.Topic+"/temperature")
		if len(r) != 1 || r[0]["location"] != "outdoor" || r[0]["celsius"] != 3.76 { // 8 + 6·cos(-135°)
			t.Errorf("outdoor reading = %v", r)
		}
		// JSON readings are not narrated, and a sensor publishes no state topic.
		if pubs, states, says, _ := fin.snapshot(); len(says) != 0 || !slices.Equal(states, []string{"reading"}) || len(pubs) != 1 {
			t.Errorf("said %q, states %q, %d publishes: want silence, [reading], 1 reading", says, states, len(pubs))
		}
	})
}

func TestClientAsTheSeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("client", "client-1")
		f := newFake()
		f.bus = &bus{ios: []*fakeIO{f}, kept: map[string]sim.Message{}}
		run(t, build(t, cfg, func(p *ClientParams) {
			p.Subscribe = []ClientSubscribe{{Filter: "encyclopedia/#", QoS: 1}, {Filter: "{prefix}/#"}}
			p.Publish = []ClientPublish{
				{Topic: "encyclopedia/temperature", Payload: "hot", QoS: 1, Every: "1s", Count: 3},
				{Topic: "{prefix}/hello", Payload: "hi"},
			}
		}), f)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		_, states, says, _ := f.snapshot()
		want := []string{
			"Subscribed to encyclopedia/# (granted QoS 1)",
			"Subscribed to home/1/# (granted QoS 0)",
			"Published hot to encyclopedia/temperature (QoS 1)",
			"Published hi to home/1/hello (QoS 0)",
			"Received hot on encyclopedia/temperature (QoS 1)",
			"Received hi on home/1/hello (QoS 0)",
			"Published hot to encyclopedia/temperature (QoS 1)",
			"Received hot on encyclopedia/temperature (QoS 1)",
			"Published hot to encyclopedia/temperature (QoS 1)",
			"Received hot on encyclopedia/temperature (QoS 1)",
		}
		// Like the seed's clients it publishes nothing but its params' messages: no state
		// topic reaches its own home/1/# subscription.
		if !slices.Equal(says, want) || !slices.Equal(states, []string{"running"}) {
			t.Errorf("said\n%s\nwant\n%s", strings.Join(says, "\n"), strings.Join(want, "\n"))
		}
		f.feed("encyclopedia/x", "\x00\xff")
		if _, _, says, _ := f.snapshot(); says[len(says)-1] != "Received <2 bytes> on encyclopedia/x (QoS 1)" {
			t.Errorf("said %q", says[len(says)-1])
		}
	})
}

// The engine decodes a group's params once and builds a device per home from them.
func TestClientParamsSharedByHomes(t *testing.T) {
	k := Kinds()["client"]
	p := k.NewParams().(*ClientParams)
	// The second is a shared subscription, as backends that split a stream use.
	p.Subscribe = []ClientSubscribe{{Filter: "{prefix}/#"}, {Filter: "$share/backend/{prefix}/+/+/temperature"}}
	for _, prefix := range []string{"home/1", "home/2"} {
		cfg := config("client", "client-1")
		cfg.Prefix = prefix
		d, err := k.Build(cfg, p)
		if err != nil {
			t.Fatal(err)
		}
		subs := d.(*client).subs
		if got := subs[0].Filter; got != prefix+"/#" {
			t.Errorf("filter %q, want %q", got, prefix+"/#")
		}
		if got, want := subs[1].Filter, "$share/backend/"+prefix+"/+/+/temperature"; got != want {
			t.Errorf("filter %q, want %q", got, want)
		}
	}
}
