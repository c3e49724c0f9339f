package scenario_test

import (
	"context"
	"fmt"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// bulb is a device kind for the example: its params are its power, 9 W unless the file
// says otherwise.
type bulbParams struct {
	Watts int `yaml:"watts"`
}

type bulb struct{}

func (bulb) Run(ctx context.Context, _ sim.IO) error { <-ctx.Done(); return nil }

func buildBulb(_ sim.DeviceConfig, p bulbParams) (sim.Device, error) {
	if p.Watts <= 0 {
		return nil, &sim.ParamError{Field: "watts", Err: fmt.Errorf("must be positive, not %d", p.Watts)}
	}
	return bulb{}, nil
}

func ExampleParse() {
	kinds := map[string]sim.Kind{
		"bulb": sim.NewKind("a light bulb", func() bulbParams { return bulbParams{Watts: 9} }, buildBulb),
	}
	s, err := scenario.Parse("home.yaml", []byte(`
name: home
homes: 2
connections: per-device
devices:
  - kind: bulb
    count: 3
    params: {watts: 12}
`), kinds)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s: %d devices over %d %s connections\n", s.Name, s.DeviceCount(), s.ConnectionCount(), s.Connections.Mode)

	// Every problem is reported at once, each with its file and line.
	_, err = scenario.Parse("bad.yaml", []byte(`
name: home
homes: 0
devices:
  - {kind: bulp}
  - {kind: bulb, perod: 5s}
  - {kind: bulb, name: porch, params: {watts: -1}}
`), kinds)
	fmt.Println(err)
	// Output:
	// home: 6 devices over 6 per-device connections
	// bad.yaml:3: homes: 0 is out of range (1..100000)
	// bad.yaml:5: devices[0].kind: unknown kind "bulp" (known kinds: bulb); did you mean "bulb"?
	// bad.yaml:6: unknown field "perod" in devices[1]; did you mean "period"?
	// bad.yaml:7: devices[2].params.watts: must be positive, not -1
}
