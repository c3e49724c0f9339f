package devices

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// HeaterParams configure the heater's thermostat.
type HeaterParams struct {
	Setpoint   float64 `yaml:"setpoint"`   // °C wanted indoors, 5..35
	ColdBelow  float64 `yaml:"cold_below"` // °C outdoors below which heating is needed
	Hysteresis float64 `yaml:"hysteresis"` // °C either side of the thresholds, against flapping
	PowerW     float64 `yaml:"power_w"`    // electrical power while on, warming the house
}

func heaterKind() sim.Kind {
	return sim.NewKind("heater: a thermostat heating an occupied home when it is cold outside; obeys set points",
		func() HeaterParams { return HeaterParams{Setpoint: 20, ColdBelow: 10, Hysteresis: 0.5, PowerW: 2000} },
		buildHeater)
}

func buildHeater(cfg sim.DeviceConfig, p HeaterParams) (sim.Device, error) {
	switch {
	case !validSetpoint(p.Setpoint):
		return nil, &sim.ParamError{Field: "setpoint", Err: fmt.Errorf("%g is outside 5..35", p.Setpoint)}
	case !(p.ColdBelow >= -50 && p.ColdBelow <= 50):
		return nil, &sim.ParamError{Field: "cold_below", Err: fmt.Errorf("%g is outside -50..50", p.ColdBelow)}
	case !(p.Hysteresis >= 0 && p.Hysteresis <= 10):
		return nil, &sim.ParamError{Field: "hysteresis", Err: fmt.Errorf("%g is outside 0..10", p.Hysteresis)}
	case !(p.PowerW > 0 && p.PowerW <= 100_000):
		return nil, &sim.ParamError{Field: "power_w", Err: fmt.Errorf("%g is outside (0, 100000]", p.PowerW)}
	}
	return &heater{
		cfg: cfg, p: p,
		positions:    cfg.Prefix + "/phone/+/position",
		temps:        cfg.Prefix + "/sensor/+/temperature",
		homeSetpoint: cfg.Prefix + "/heater/setpoint",
		ownSetpoint:  cfg.Topic + "/setpoint",
	}, nil
}

type heater struct {
	cfg                                         sim.DeviceConfig
	p                                           HeaterParams
	positions, temps, homeSetpoint, ownSetpoint string // subscriptions
	schedule                                           // its telemetry, one a period
}

// thermostat is the heater's view of the home. Unknown temperatures are NaN, and every
// comparison with NaN is false: an unknown outdoor never turns the heater on, an unknown
// indoor never turns it off.
type thermostat struct {
	HeaterParams
	on              bool
	phones          presence
	indoor, outdoor float64
}

// want is whether the heater should run, with hysteresis around both thresholds.
func (t *thermostat) want() bool {
	occupied := t.phones.occupied()
	if t.on {
		stop := !occupied || t.outdoor >= t.ColdBelow+t.Hysteresis || t.indoor >= t.Setpoint+t.Hysteresis
		return !stop
	}
	cool := !(t.indoor >= t.Setpoint-t.Hysteresis) // true while indoor is unknown
	return occupied && t.outdoor < t.ColdBelow && cool
}

func (t *thermostat) watts() float64 {
	if t.on {
		return t.PowerW
	}
	return 0
}

func (t *thermostat) fields() map[string]any {
	return map[string]any{"on": t.on, "setpoint": t.Setpoint}
}

func (d *heater) Run(ctx context.Context, io sim.IO) error {
	o := newOut(d.cfg, io)
	house := houseOf(d.cfg)
	if err := subscribe(ctx, io, d.cfg.QoS, d.positions, d.temps, d.homeSetpoint, d.ownSetpoint); err != nil {
		return err
	}
	t := &thermostat{HeaterParams: d.p, phones: presence{}, indoor: math.NaN(), outdoor: math.NaN()}
	o.state(ctx, "off", atStart, t.fields())
	telemetry, stop := d.every(d.cfg.Period, true, 0)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case due := <-telemetry:
			d.took(due, true)
			o.due = due
			o.publish(ctx, d.cfg.Topic+"/telemetry", false, map[string]any{"power_w": t.watts()})
		case m, ok := <-io.Inbox():
			if !ok {
				return nil
			}
			c, err := d.apply(ctx, o, t, m)
			if err != nil {
				io.Reject(m.Topic, err)
				continue
			}
			if want := t.want(); want != t.on {
				t.on = want
				house.SetHeating(d.cfg.ID, t.watts(), time.Now())
				o.state(ctx, onOff(t.on), c, t.fields())
			}
		}
	}
}

// apply takes message m into the thermostat and returns it as the cause of any change.
// A new set point is published and told at once, before any on/off change it brings.
func (d *heater) apply(ctx context.Context, o *out, t *thermostat, m sim.Message) (cause, error) {
	switch {
	case m.Topic == d.homeSetpoint || m.Topic == d.ownSetpoint:
		sp, err := parseSetpoint(m.Payload)
		if err != nil || sp == t.Setpoint {
			// The same set point again (a retained message seen twice) is no news.
			return onTopic(m.Topic, ""), err
		}
		t.Setpoint = sp
		what := fmt.Sprintf("set point %.1f °C", sp)
		o.publishState(ctx, onOff(t.on), onTopic(m.Topic, ""), t.fields())
		o.say(what, "on "+m.Topic)
		return onTopic(m.Topic, what), nil
	case topic.Match(d.temps, m.Topic):
		loc, v, err := parseTemperature(m.Payload)
		if err != nil {
			return cause{}, err
		}
		switch loc {
		case "indoor":
			t.indoor = v
		case "outdoor":
			t.outdoor = v
		}
		return onTopic(m.Topic, fmt.Sprintf("%s %.1f °C", loc, v)), nil
	default:
		return t.phones.update(m)
	}
}
