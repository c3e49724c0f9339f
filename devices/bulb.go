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
	on, occupied, phones := false, false, presence{}
	o.state(ctx, "off", atStart, nil)
	telemetry, stop := every(d.cfg.Period)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-telemetry:
			o.publish(ctx, d.cfg.Topic+"/telemetry", false, map[string]any{"power_w": bulbWatts(on)})
		case m, ok := <-io.Inbox():
			if !ok {
				return nil
			}
			want, c := on, onTopic(m.Topic, "")
			var err error
			if m.Topic == set {
				want, err = field[bool](m.Payload, "on")
			} else if c, err = phones.update(m); phones.occupied() != occupied {
				occupied = !occupied // follow presence only when it changes
				want = occupied
			}
			if err != nil {
				io.Reject(m.Topic, err)
			} else if want != on {
				on = want
				o.state(ctx, onOff(on), c, nil)
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
