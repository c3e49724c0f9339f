package devices

import "github.com/fleetsim/fleetsim/sim"

// Kinds returns every device kind of this package by name, for the runner.
func Kinds() map[string]sim.Kind {
	return map[string]sim.Kind{
		"phone":  phoneKind(),
		"bulb":   bulbKind(),
		"heater": heaterKind(),
		"camera": cameraKind(),
		"vacuum": vacuumKind(),
		"sensor": sensorKind(),
		"client": clientKind(),
		"load":   loadKind(),
		"sink":   sinkKind(),
	}
}

// NoParams is the params of a kind that takes none: any key in its params block is an error.
type NoParams struct{}

func noParams() NoParams { return NoParams{} }
