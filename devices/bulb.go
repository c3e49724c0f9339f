package devices

import (
	"context"

	"github.com/fleetsim/fleetsim/sim"
)

func bulbKind() sim.Kind {
	return sim.NewKind("light bulb: on while someone is home, off when every phone is away",
		noParams, func(cfg sim.DeviceConfig, _ NoParams) (sim.Device, error) { return &bulb{cfg: cfg}, nil })
}

type bulb struct {
	cfg      sim.DeviceConfig
	schedule // its telemetry, one a period
}

func (d *bulb) Run(ctx context.Context, io sim.IO) error {
	return runPresenceSwitch(ctx, io, d.cfg, &d.schedule, "on", false, onOff, func(bool) bool { return true }, func(o *out, on bool) {
		o.publish(ctx, d.cfg.Topic+"/telemetry", false, map[string]any{"power_w": bulbWatts(on)})
	})
}

func bulbWatts(on bool) float64 {
	if on {
		return 9.0
	}
	return 0.3 // standby
}
