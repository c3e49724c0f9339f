package devices

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

// SensorParams configure a temperature sensor.
type SensorParams struct {
	Location string  `yaml:"location"` // "indoor" or "outdoor" read the house; "fixed" reads celsius+spread
	Format   string  `yaml:"format"`   // "json" on {topic}/temperature, or "plain": a bare number on {topic}
	Celsius  float64 `yaml:"celsius"`  // fixed only: the base reading
	Spread   float64 `yaml:"spread"`   // fixed only: readings are celsius + [0, spread)
}

func sensorKind() sim.Kind {
	return sim.NewKind("temperature sensor: publishes the indoor or outdoor temperature of its home, or readings around a fixed value",
		func() SensorParams { return SensorParams{Location: "indoor", Format: "json", Celsius: 20, Spread: 1} },
		buildSensor)
}

func buildSensor(cfg sim.DeviceConfig, p SensorParams) (sim.Device, error) {
	switch {
	case p.Location != "indoor" && p.Location != "outdoor" && p.Location != "fixed":
		return nil, &sim.ParamError{Field: "location", Err: fmt.Errorf("%q is not indoor, outdoor or fixed", p.Location)}
	case p.Format != "json" && p.Format != "plain":
		return nil, &sim.ParamError{Field: "format", Err: fmt.Errorf("%q is not json or plain", p.Format)}
	case !(p.Celsius >= -100 && p.Celsius <= 100):
		return nil, &sim.ParamError{Field: "celsius", Err: fmt.Errorf("%g is outside -100..100", p.Celsius)}
	case !(p.Spread >= 0 && p.Spread <= 100):
		return nil, &sim.ParamError{Field: "spread", Err: fmt.Errorf("%g is outside 0..100", p.Spread)}
	}
	return &sensor{cfg: cfg, p: p}, nil
}

type sensor struct {
	cfg      sim.DeviceConfig
	p        SensorParams
	schedule // a reading at once, then one a period
}

func (d *sensor) Run(ctx context.Context, io sim.IO) error {
	o := newOut(d.cfg, io)
	house := houseOf(d.cfg)
	read := func() float64 {
		switch d.p.Location {
		case "indoor":
			return house.Indoor(time.Now())
		case "outdoor":
			return Outdoor(o.tod())
		}
		return d.p.Celsius + io.Rand().Float64()*d.p.Spread
	}
	publish := func(due time.Time) {
		v := read()
		if d.p.Format == "plain" { // as the seed's Mosquitto example
			s := strconv.FormatFloat(v, 'f', -1, 64)
			_ = io.PublishAt(ctx, due, d.cfg.Topic, []byte(s), d.cfg.QoS, false)
			io.Say("Just published " + s + " to topic " + d.cfg.Topic)
			return
		}
		o.due = due
		o.publish(ctx, d.cfg.Topic+"/temperature", false, map[string]any{
			"location": d.p.Location, "celsius": math.Round(v*100) / 100,
		})
	}
	// A sensor's only state is that it reads; it publishes readings, not a state topic,
	// so the seed's plain TEMPERATURE example carries nothing else.
	io.SetState("reading")
	readings, stop := d.every(d.cfg.Period, true, 1)
	publish(time.Now())
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case due := <-readings:
			publish(due)
		case m, ok := <-io.Inbox(): // subscribes to nothing, but drains whatever comes
			if !ok {
				return nil
			}
			io.Reject(m.Topic, errors.New("a sensor takes no messages"))
		}
	}
}
