package devices

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

// PhoneParams say when the phone's human is out and which heater set points they send.
type PhoneParams struct {
	Leave     string          `yaml:"leave"`  // "HH:MM": away from here...
	Return    string          `yaml:"return"` // ...until here (may wrap past midnight)
	Setpoints []PhoneSetpoint `yaml:"setpoints"`
}

// PhoneSetpoint is one scheduled set point: at "HH:MM" every simulated day, send celsius.
type PhoneSetpoint struct {
	At      string  `yaml:"at"`
	Celsius float64 `yaml:"celsius"`
}

func phoneKind() sim.Kind {
	return sim.NewKind("smartphone: publishes its position, leaves and comes back on schedule (or when told {\"away\": bool} on its /set topic), sends heater set points",
		func() PhoneParams { return PhoneParams{Leave: "08:00", Return: "18:00"} }, buildPhone)
}

type phone struct {
	cfg         sim.DeviceConfig
	leave, back time.Duration
	setpoints   []setpoint
	schedule    // its position reports, one a period
}

type setpoint struct {
	at      time.Duration
	celsius float64
}

func buildPhone(cfg sim.DeviceConfig, p PhoneParams) (sim.Device, error) {
	d := &phone{cfg: cfg}
	var err error
	if d.leave, err = sim.ParseTimeOfDay(p.Leave); err != nil {
		return nil, &sim.ParamError{Field: "leave", Err: err}
	}
	if d.back, err = sim.ParseTimeOfDay(p.Return); err != nil {
		return nil, &sim.ParamError{Field: "return", Err: err}
	}
	if d.leave == d.back {
		return nil, &sim.ParamError{Field: "return", Err: errors.New("equals leave")}
	}
	for i, s := range p.Setpoints {
		at, err := sim.ParseTimeOfDay(s.At)
		if err != nil {
			return nil, &sim.ParamError{Field: "setpoints", Err: fmt.Errorf("[%d].at: %w", i, err)}
		}
		if !validSetpoint(s.Celsius) {
			return nil, &sim.ParamError{Field: "setpoints", Err: fmt.Errorf("[%d].celsius: %g is outside 5..35", i, s.Celsius)}
		}
		d.setpoints = append(d.setpoints, setpoint{at, s.Celsius})
	}
	return d, nil
}

// away reports whether the human is out at time of day tod: in [leave, return).
func (d *phone) away(tod time.Duration) bool {
	if d.leave < d.back {
		return tod >= d.leave && tod < d.back
	}
	return tod >= d.leave || tod < d.back
}

// crossed reports whether time of day at was passed going from prev to now (may wrap).
func crossed(prev, now, at time.Duration) bool {
	if prev <= now {
		return prev < at && at <= now
	}
	return prev < at || at <= now
}

// phoneState is what a running phone keeps between events.
type phoneState struct {
	last            time.Duration // the time of day at the last minute tick
	away, scheduled bool          // where the human is; where the schedule says (a command holds until it changes)
	indoor, outdoor float64       // NaN until a sensor reports
	told            time.Time     // when the human was last told the temperatures
}

func (d *phone) Run(ctx context.Context, io sim.IO) error {
	o := newOut(d.cfg, io)
	temps := d.cfg.Prefix + "/sensor/+/temperature"
	set := d.cfg.Topic + "/set" // {"away": true}: its human leaves (or comes home) now
	if err := subscribe(ctx, io, d.cfg.QoS, temps, set); err != nil {
		return err
	}
	st := phoneState{last: o.tod(), indoor: math.NaN(), outdoor: math.NaN()}
	st.away = d.away(st.last)
	st.scheduled = st.away
	o.state(ctx, homeAway(st.away), atStart, nil)
	d.position(ctx, o, st.away)

	minute := time.NewTicker(max(d.cfg.Clock.WallFor(time.Minute), 5*time.Millisecond))
	defer minute.Stop()
	report, stop := d.every(d.cfg.Period, true, 0)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case due := <-report:
			d.took(due, true)
			o.due = due
			d.position(ctx, o, st.away)
		case <-minute.C:
			d.minute(ctx, o, &st)
		case m, ok := <-io.Inbox():
			switch {
			case !ok:
				return nil
			case m.Topic == set:
				d.command(ctx, o, m, &st.away)
			default:
				d.temperature(o, &st, m, temps)
			}
		}
	}
}

// minute sends the set points whose time came, and moves the human when the schedule says.
func (d *phone) minute(ctx context.Context, o *out, st *phoneState) {
	setpointTopic := d.cfg.Prefix + "/heater/setpoint"
	now := o.tod()
	for _, s := range d.setpoints {
		if crossed(st.last, now, s.at) {
			o.publish(ctx, setpointTopic, d.cfg.Retained, map[string]any{"celsius": s.celsius})
			o.say(fmt.Sprintf("set point %.1f °C", s.celsius), "on "+setpointTopic)
		}
	}
	st.last = now
	a := d.away(now)
	if a == st.scheduled {
		return
	}
	st.scheduled = a
	if a == st.away { // a command got there first
		return
	}
	st.away = a
	why := "leaves at " + sim.FormatTimeOfDay(d.leave)
	if !a {
		why = "returns at " + sim.FormatTimeOfDay(d.back)
	}
	o.state(ctx, homeAway(a), cause{"schedule", why}, nil)
	d.position(ctx, o, a)
}

// temperature takes a sensor's reading and tells the human both, at most once an hour.
func (d *phone) temperature(o *out, st *phoneState, m sim.Message, temps string) {
	loc, c, err := parseTemperature(m.Payload)
	if err != nil {
		o.io.Reject(m.Topic, err)
		return
	}
	switch loc {
	case "indoor":
		st.indoor = c
	case "outdoor":
		st.outdoor = c
	}
	known := !math.IsNaN(st.indoor) && !math.IsNaN(st.outdoor)
	if known && (st.told.IsZero() || time.Since(st.told) >= d.cfg.Clock.WallFor(time.Hour)) {
		st.told = time.Now()
		o.say(fmt.Sprintf("indoor %.1f °C, outdoor %.1f °C", st.indoor, st.outdoor), "on "+temps)
	}
}

// command obeys {"away": bool} on the phone's /set topic: its human leaves or comes home
// now, whatever the schedule says, until the schedule's next change.
func (d *phone) command(ctx context.Context, o *out, m sim.Message, away *bool) {
	a, err := field[bool](m.Payload, "away")
	if err != nil {
		o.io.Reject(m.Topic, err)
		return
	}
	if a == *away {
		return
	}
	*away = a
	o.state(ctx, homeAway(a), onTopic(m.Topic, "told"), nil)
	d.position(ctx, o, a)
}

// position publishes where the phone is: within 50 m of home, or a few km away.
func (d *phone) position(ctx context.Context, o *out, away bool) {
	distance := o.io.Rand().Float64() * 50
	if away {
		distance = 2000 + o.io.Rand().Float64()*6000
	}
	o.publish(ctx, d.cfg.Topic+"/position", d.cfg.Retained, map[string]any{
		"away": away, "distance_m": math.Round(distance*10) / 10,
	})
}

func homeAway(away bool) string {
	if away {
		return "away"
	}
	return "home"
}
