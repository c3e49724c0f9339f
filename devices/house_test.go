package devices

import (
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

func TestOutdoorCurve(t *testing.T) {
	for _, c := range []struct {
		tod  time.Duration
		want float64
	}{
		{15 * time.Hour, 14}, {3 * time.Hour, 2}, {9 * time.Hour, 8}, {21 * time.Hour, 8},
	} {
		if got := Outdoor(c.tod); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Outdoor(%v) = %v, want %v", c.tod, got, c.want)
		}
	}
}

func TestHouseDriftsAndHeats(t *testing.T) {
	clock := sim.Clock{WallStart: time.Unix(0, 0), Start: 3 * time.Hour, Day: 24 * time.Minute} // 1 min = 1 h
	cold, heated := NewHouse(clock), NewHouse(clock)
	heated.SetHeating("heater-1", 2000, clock.WallStart)
	at := clock.WallStart.Add(time.Minute)
	if got := cold.Indoor(at); got >= StartIndoor || got < 15 {
		t.Errorf("unheated after an hour at 2 °C outdoor: %.2f °C", got)
	}
	// (2-18)/8 + 2.8 = +0.8 °C/h at first.
	if got := heated.Indoor(at); got <= StartIndoor || got > StartIndoor+1 {
		t.Errorf("heated after an hour: %.2f °C", got)
	}
	heated.SetHeating("heater-1", 0, at)
	before := heated.Indoor(at)
	if got := heated.Indoor(at.Add(time.Minute)); got >= before {
		t.Errorf("no longer heated: %.2f °C after %.2f °C", got, before)
	}
	if got := heated.Indoor(at); got != heated.Indoor(at.Add(time.Minute)) {
		t.Errorf("reading the past changed the house: %.2f", got)
	}
}

// TestSmartHomeDay runs the smart-home scenario's day (phone, indoor and outdoor sensors,
// heater, bulb) over a tiny in-memory broker and checks the story the heater tells.
func TestSmartHomeDay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &bus{kept: map[string]sim.Message{}}
		shared := sim.NewShared()
		add := func(kind, id string, period time.Duration, set func(p any)) *fakeIO {
			cfg := config(kind, id)
			cfg.Shared, cfg.Period = shared, period
			f := newFake()
			f.bus = b
			b.mu.Lock()
			b.ios = append(b.ios, f)
			b.mu.Unlock()
			k := Kinds()[kind]
			p := k.NewParams()
			if set != nil {
				set(p)
			}
			d, err := k.Build(cfg, p)
			if err != nil {
				t.Fatal(err)
			}
			run(t, d, f)
			return f
		}
		// As in scenarios/smart-home.yaml.
		heater := add("heater", "heater-1", 10*time.Second, nil)
		bulb := add("bulb", "bulb-1", 10*time.Second, nil)
		vacuum := add("vacuum", "vacuum-1", 10*time.Second, nil)
		add("sensor", "indoor-1", 2*time.Second, nil)
		add("sensor", "outdoor-1", 2*time.Second, func(p any) { p.(*SensorParams).Location = "outdoor" })
		add("phone", "phone-1", 5*time.Second, func(p any) {
			p.(*PhoneParams).Setpoints = []PhoneSetpoint{{"21:00", 23}, {"23:30", 18}, {"05:30", 21}}
		})
		time.Sleep(2*time.Minute - time.Millisecond) // one simulated day, to 05:59:52
		synctest.Wait()

		_, states, says, rejects := heater.snapshot()
		if len(rejects) > 0 {
			t.Errorf("heater rejected messages on %q", rejects)
		}
		t.Logf("heater:\n%s", strings.Join(says, "\n"))
		want := []string{
			"06:00 heater-1   off      (start)",
			"06:00 heater-1   on       (", // cold morning, phone home
			"08:00 heater-1   off      (phone-1 left home, on home/1/phone/phone-1/position)",
			// Nothing at 18:00: outdoor is ~12 °C when the phone comes back.
			"20:00 heater-1   on       (outdoor 9.6 °C, on home/1/sensor/outdoor-1/temperature)",
			"21:00 heater-1   set point 23.0 °C (on home/1/heater/setpoint)",
			"23:30 heater-1   set point 18.0 °C (on home/1/heater/setpoint)",
			"23:30 heater-1   off      (set point 18.0 °C, on home/1/heater/setpoint)",
			// Then it keeps the house around 18 °C through the night.
		}
		if len(says) < len(want) {
			t.Fatalf("heater said %d lines, want at least %d", len(says), len(want))
		}
		for i, w := range want {
			if !strings.HasPrefix(says[i], w) {
				t.Errorf("line %d = %q, want %q...", i, says[i], w)
			}
		}
		if got := lines(says, "05:30 heater-1   set point 21.0 °C"); len(got) != 1 || states[len(states)-1] != "on" {
			t.Errorf("05:30: set point lines %q, last state %q: want 21 °C and heating", got, states[len(states)-1])
		}
		_, _, says, _ = bulb.snapshot()
		if want := []string{
			"06:00 bulb-1     off      (start)",
			"06:00 bulb-1     on       (phone-1 came home, on home/1/phone/phone-1/position)",
			"08:00 bulb-1     off      (phone-1 left home, on home/1/phone/phone-1/position)",
			"18:00 bulb-1     on       (phone-1 came home, on home/1/phone/phone-1/position)",
		}; strings.Join(says, "\n") != strings.Join(want, "\n") {
			t.Errorf("bulb said\n%s", strings.Join(says, "\n"))
		}
		_, _, says, _ = vacuum.snapshot()
		if want := []string{
			"06:00 vacuum-1   docked   (start)",
			"08:00 vacuum-1   cleaning (phone-1 left home, on home/1/phone/phone-1/position)",
			"09:30 vacuum-1   docked   (cleaned for 1h30m0s)",
		}; strings.Join(says, "\n") != strings.Join(want, "\n") {
			t.Errorf("vacuum said\n%s", strings.Join(says, "\n"))
		}
	})
}
