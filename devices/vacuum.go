package devices

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

// VacuumParams say how long a cleaning run lasts.
type VacuumParams struct {
	CleanFor string `yaml:"clean_for"` // simulated duration, e.g. "90m"
}

// Battery rates, in percent per simulated hour.
const (
	vacuumDrain  = 40.0
	vacuumCharge = 60.0
)

func vacuumKind() sim.Kind {
	return sim.NewKind("robot vacuum: cleans for a while once every phone is away, docks when someone is home",
		func() VacuumParams { return VacuumParams{CleanFor: "90m"} }, buildVacuum)
}

func buildVacuum(cfg sim.DeviceConfig, p VacuumParams) (sim.Device, error) {
	d, err := time.ParseDuration(p.CleanFor)
	if err == nil && (d <= 0 || d > 24*time.Hour) {
		err = fmt.Errorf("%s is outside (0, 24h]", d)
	}
	if err != nil {
		return nil, &sim.ParamError{Field: "clean_for", Err: err}
	}
	return &vacuum{cfg: cfg, cleanFor: d}, nil
}

type vacuum struct {
	cfg      sim.DeviceConfig
	cleanFor time.Duration // simulated
	schedule               // its status reports, one a period
}

func (d *vacuum) Run(ctx context.Context, io sim.IO) error {
	o := newOut(d.cfg, io)
	set := d.cfg.Topic + "/set"
	if err := subscribe(ctx, io, d.cfg.QoS, d.cfg.Prefix+"/phone/+/position", set); err != nil {
		return err
	}
	state, empty, phones := "docked", false, presence{}
	battery, settled := 100.0, time.Now()
	// settle brings the battery up to now: draining while cleaning, charging while docked.
	settle := func() {
		hours := (d.cfg.Clock.Elapsed(time.Now()) - d.cfg.Clock.Elapsed(settled)).Hours()
		if state == "cleaning" {
			hours *= -vacuumDrain
		} else {
			hours *= vacuumCharge
		}
		battery, settled = min(max(battery+hours, 0), 100), time.Now()
	}
	var done <-chan time.Time // fires when the cleaning run is over
	change := func(word string, c cause) {
		if word == "cleaning" {
			done = time.After(d.cfg.Clock.WallFor(d.cleanFor))
		} else {
			done = nil
		}
		if word != state {
			settle()
			state = word
			o.state(ctx, state, c, nil)
		}
	}
	o.state(ctx, state, atStart, nil)
	status, stop := d.every(d.cfg.Period, true, 0)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case due := <-status:
			d.took(due, true)
			settle()
			o.due = due
			o.publish(ctx, d.cfg.Topic+"/status", false, map[string]any{
				"battery_pct": math.Round(battery*10) / 10, "state": state,
			})
		case <-done:
			change("docked", cause{"timer", "cleaned for " + d.cleanFor.String()})
		case m, ok := <-io.Inbox():
			if !ok {
				return nil
			}
			if m.Topic == set {
				clean, err := field[bool](m.Payload, "clean")
				if err != nil {
					io.Reject(m.Topic, err)
				} else {
					change(cleaningDocked(clean), onTopic(m.Topic, ""))
				}
				continue
			}
			c, err := phones.update(m)
			if err != nil {
				io.Reject(m.Topic, err)
			} else if phones.empty() != empty {
				empty = !empty // follow presence only when it changes
				change(cleaningDocked(empty), c)
			}
		}
	}
}

func cleaningDocked(clean bool) string {
	if clean {
		return "cleaning"
	}
	return "docked"
}
