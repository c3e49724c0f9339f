package scenario

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fleetsim/fleetsim/sim"
)

// Fake kinds for the tests.

type nopDevice struct{}

func (nopDevice) Run(ctx context.Context, _ sim.IO) error { <-ctx.Done(); return nil }

type lampParams struct {
	Brightness int           `yaml:"brightness"`
	Color      string        `yaml:"color"`
	Fade       time.Duration `yaml:"fade"`
	Schedule   lampSchedule  `yaml:"schedule"`
	Scenes     []lampScene   `yaml:"scenes"`
	Tags       map[string]string
}

type lampSchedule struct {
	On  string `yaml:"on"`
	Off string `yaml:"off"`
}

type lampScene struct {
	Name  string `yaml:"name"`
	Level int    `yaml:"level"`
}

func lampDefaults() lampParams {
	return lampParams{Brightness: 80, Color: "warm", Fade: time.Second, Schedule: lampSchedule{On: "18:00", Off: "23:00"}}
}

func buildLamp(cfg sim.DeviceConfig, p lampParams) (sim.Device, error) {
	if p.Brightness < 0 || p.Brightness > 100 {
		return nil, &sim.ParamError{Field: "brightness", Err: fmt.Errorf("%d is out of range (0..100)", p.Brightness)}
	}
	if p.Schedule.On == "never" {
		return nil, fmt.Errorf("lamp: %w", &sim.ParamError{Field: "schedule.on", Err: errors.New("must be HH:MM")})
	}
	for i, s := range p.Scenes {
		if s.Level > 100 {
			return nil, &sim.ParamError{Field: fmt.Sprintf("scenes[%d].level", i), Err: errors.New("must be at most 100")}
		}
	}
	if p.Color == "ultraviolet" {
		return nil, errors.New("lamp: ultraviolet needs period >= 1s")
	}
	if p.Color == "missing" {
		return nil, &sim.ParamError{Field: "glow", Err: errors.New("is required with color missing")}
	}
	if p.Color == "panic" {
		panic("boom")
	}
	return nopDevice{}, nil
}

type sensorParams struct{}

var testKinds = map[string]sim.Kind{
	"lamp":   sim.NewKind("a test lamp", lampDefaults, buildLamp),
	"sensor": sim.NewKind("a test sensor", func() sensorParams { return sensorParams{} }, func(sim.DeviceConfig, sensorParams) (sim.Device, error) { return nopDevice{}, nil }),
}

// gadgetParams exercises the decoder's corners: pointers, inline structs and maps, small
// integer types, arrays, interfaces and types that decode themselves.
type gadgetParams struct {
	Common  `yaml:",inline"`
	Level   uint8          `yaml:"level"`
	Offset  int8           `yaml:"offset"`
	Gain    float32        `yaml:"gain"`
	On      bool           `yaml:"on"`
	Limit   *int           `yaml:"limit"`
	RGB     [3]int         `yaml:"rgb"`
	Any     any            `yaml:"any"`
	When    time.Time      `yaml:"when"`
	Mode    gadgetMode     `yaml:"mode"`
	Child   *gadgetChild   `yaml:"child"`
	Ignored string         `yaml:"-"`
	Extra   map[string]int `yaml:",inline"`
}

type Common struct {
	Label string `yaml:"label"`
}

type gadgetChild struct {
	Depth int `yaml:"depth"`
}

// gadgetMode decodes itself from "fast" or "slow".
type gadgetMode int

func (m *gadgetMode) UnmarshalYAML(n *yaml.Node) error {
	switch n.Value {
	case "fast":
		*m = 1
	case "slow":
		*m = 2
	default:
		return fmt.Errorf("mode must be fast or slow, not %q", n.Value)
	}
	return nil
}

func init() {
	testKinds["gadget"] = sim.NewKind("a test gadget",
		func() gadgetParams { return gadgetParams{Level: 7, Gain: 1} },
		func(sim.DeviceConfig, gadgetParams) (sim.Device, error) { return nopDevice{}, nil })
}
