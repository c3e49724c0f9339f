package runner

import "github.com/fleetsim/fleetsim/sim"

// Observer is told about the devices of a run as it goes, for a live view such as the
// classroom (sim/classroom). Its methods are called from the devices' goroutines and must
// return at once: an observer that cannot keep up drops what it is told, never the run.
type Observer interface {
	// DeviceAdded is called once per device when the run builds it.
	DeviceAdded(cfg sim.DeviceConfig)
	// DeviceState is called when a device's state changes (sim.IO.SetState).
	DeviceState(home int, id, state string)
	// DeviceSubscribed is called when a device subscribes to filter.
	DeviceSubscribed(home int, id, filter string)
}
