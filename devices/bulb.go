package devices

import (
	"context"

	"github.com/fleetsim/fleetsim/sim"
)

func bulbKind() sim.Kind {
	return sim.NewKind("light bulb: on while someone is home, off when every phone is away",
		noParams, func(cfg sim.DeviceConfig, _ NoParams) (sim.Device, error) { return &bulb{cfg}, nil })
}

type bulb struct{ cfg sim.DeviceConfig }

func (d *bulb) Run(ctx context.Context, io sim.IO) error {
	o := newOut(d.cfg, io)
	set := d.cfg.Topic + "/set"
	if err := subscribe(ctx, io, d.cfg.QoS, d.cfg.Prefix+"/phone/+/position", set); err != nil {
		return err
	}
	sw := newPresenceSwitch(set, "on", false)
	o.state(ctx, "off", atStart, nil)
	telemetry, stop := every(d.cfg.Period)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-telemetry:
			o.publish(ctx, d.cfg.Topic+"/telemetry", false, map[string]any{"power_w": bulbWatts(sw.on)})
		case m, ok := <-io.Inbox():
			if !ok {
				return nil
			}
			if changed, c, err := sw.apply(m); err != nil {
				io.Reject(m.Topic, err)
			} else if changed {
				o.state(ctx, onOff(sw.on), c, nil)
			}
		}
	}
}

func bulbWatts(on bool) float64 {
	if on {
		return 9.0
	}
	return 0.3 // standby
}
