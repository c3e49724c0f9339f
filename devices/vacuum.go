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

// vacuumRun is a running vacuum's state.
type vacuumRun struct {
	d       *vacuum
	o       *out
	state   string    // cleaning or docked
	battery float64   // percent, as of settled
	settled time.Time // when battery was last brought up to date
	done    <-chan time.Time
	empty   bool // every phone away, as last heard
	phones  presence
}

func (d *vacuum) Run(ctx context.Context, io sim.IO) error {
	o := newOut(d.cfg, io)
	set := d.cfg.Topic + "/set"
	if err := subscribe(ctx, io, d.cfg.QoS, d.cfg.Prefix+"/phone/+/position", set); err != nil {
		return err
	}
	v := &vacuumRun{d: d, o: o, state: "docked", battery: 100, settled: time.Now(), phones: presence{}}
	o.state(ctx, v.state, atStart, nil)
	status, stop := d.every(d.cfg.Period, true, 0)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case due := <-status:
			d.took(due, true)
			v.settle()
			o.due = due
			o.publish(ctx, d.cfg.Topic+"/status", false, map[string]any{
				"battery_pct": math.Round(v.battery*10) / 10, "state": v.state,
			})
		case <-v.done:
			v.change(ctx, "docked", cause{"timer", "cleaned for " + d.cleanFor.String()})
		case m, ok := <-io.Inbox():
			if !ok {
				return nil
			}
			v.heard(ctx, m, m.Topic == set)
		}
	}
}

// settle brings the battery up to now: draining while cleaning, charging while docked.
func (v *vacuumRun) settle() {
	clock := v.d.cfg.Clock
	hours := (clock.Elapsed(time.Now()) - clock.Elapsed(v.settled)).Hours()
	if v.state == "cleaning" {
		hours *= -vacuumDrain
	} else {
		hours *= vacuumCharge
	}
	v.battery, v.settled = min(max(v.battery+hours, 0), 100), time.Now()
}

// change starts or ends a cleaning run (a new one restarts its timer).
func (v *vacuumRun) change(ctx context.Context, word string, c cause) {
	if word == "cleaning" {
		v.done = time.After(v.d.cfg.Clock.WallFor(v.d.cleanFor))
	} else {
		v.done = nil
	}
	if word != v.state {
		v.settle()
		v.state = word
		v.o.state(ctx, v.state, c, nil)
	}
}

// heard obeys a command on the vacuum's /set topic, or follows the phones' presence when
// it changes.
func (v *vacuumRun) heard(ctx context.Context, m sim.Message, command bool) {
	if command {
		clean, err := field[bool](m.Payload, "clean")
		if err != nil {
			v.o.io.Reject(m.Topic, err)
			return
		}
		v.change(ctx, cleaningDocked(clean), onTopic(m.Topic, ""))
		return
	}
	c, err := v.phones.update(m)
	if err != nil {
		v.o.io.Reject(m.Topic, err)
	} else if v.phones.empty() != v.empty {
		v.empty = !v.empty // follow presence only when it changes
		v.change(ctx, cleaningDocked(v.empty), c)
	}
}

func cleaningDocked(clean bool) string {
	if clean {
		return "cleaning"
	}
	return "docked"
}
