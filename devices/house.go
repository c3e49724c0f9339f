package devices

import (
	"math"
	"sync"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

// The house model's figures. With them the smart-home day plays out as the seed tells it:
// the heater runs on the cold morning (outdoor ~4 °C at 06:00) without reaching 20.5 °C
// before the phone leaves at 08:00, stays off on the mild evening when it comes back at 18:00
// (outdoor ~12 °C), and comes on at about 19:45 when outdoor falls below 10 °C.
const (
	OutdoorMean  = 8.0             // °C, daily mean of the outdoor temperature
	OutdoorSwing = 6.0             // °C, amplitude of its daily curve
	Warmest      = 15 * time.Hour  // time of day of the outdoor maximum
	StartIndoor  = 18.0            // °C, indoor temperature when the run starts
	Leak         = 8 * time.Hour   // time constant of indoor drifting toward outdoor
	HeatPerKW    = 1.4             // °C per simulated hour a running heater adds, per kW
	houseStep    = 1 * time.Minute // longest simulated step of the integration
)

// House is the physics of one home, shared by its devices through sim.Shared: sensors read
// it and heaters warm it. It never talks MQTT. It is safe for concurrent use.
//
// Indoor temperature follows dT/dt = (outdoor-T)/Leak + HeatPerKW·kW, integrated lazily in
// simulated time whenever it is read or the heating changes.
type House struct {
	clock sim.Clock

	mu      sync.Mutex
	indoor  float64            // °C at wall time at
	at      time.Time          // wall time indoor was computed for
	heaters map[string]float64 // watts of each running heater, by device id
}

// NewHouse returns a house at StartIndoor at the clock's start.
func NewHouse(clock sim.Clock) *House {
	return &House{clock: clock, indoor: StartIndoor, at: clock.WallStart, heaters: map[string]float64{}}
}

// houseOf returns the house of the device's home, creating it on first use.
func houseOf(cfg sim.DeviceConfig) *House {
	if cfg.Shared == nil { // a device run alone: a house of its own
		return NewHouse(cfg.Clock)
	}
	return cfg.Shared.Get("house", func() any { return NewHouse(cfg.Clock) }).(*House)
}

// Outdoor is the outdoor temperature at simulated time of day tod.
func Outdoor(tod time.Duration) float64 {
	return OutdoorMean + OutdoorSwing*math.Cos(2*math.Pi*float64(tod-Warmest)/float64(24*time.Hour))
}

// Indoor is the indoor temperature at wall time now.
func (h *House) Indoor(now time.Time) float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.advance(now)
	return h.indoor
}

// SetHeating records that heater id now puts watts into the house (0 when it is off).
func (h *House) SetHeating(id string, watts float64, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.advance(now)
	if watts > 0 {
		h.heaters[id] = watts
	} else {
		delete(h.heaters, id)
	}
}

// advance brings indoor up to wall time now, in steps of at most houseStep simulated time.
// Each step is exact for a constant outdoor temperature: T relaxes toward the equilibrium
// outdoor + heat·Leak with time constant Leak.
func (h *House) advance(now time.Time) {
	left := h.clock.Elapsed(now) - h.clock.Elapsed(h.at)
	if left <= 0 {
		return
	}
	kw := 0.0
	for _, w := range h.heaters {
		kw += w / 1000
	}
	tod := h.clock.TimeOfDay(h.at)
	for left > 0 {
		dt := min(left, houseStep)
		target := Outdoor(tod) + HeatPerKW*kw*Leak.Hours()
		h.indoor = target + (h.indoor-target)*math.Exp(-float64(dt)/float64(Leak))
		tod += dt
		left -= dt
	}
	h.at = now
}
