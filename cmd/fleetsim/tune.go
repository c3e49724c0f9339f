package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/fleetsim/fleetsim/sim/scenario"
)

// largeFleet is the fleet size from which fleetsim sizes the Go runtime for many mostly
// waiting devices (tuneRuntime).
const largeFleet = 100_000

// Settings for a large fleet (tuneRuntime).
const (
	largeFleetGOGC     = 25 // with paho
	largeFleetLeanGOGC = 10 // with the lean client
	minLargeFleetPs    = 4
)

// tuneRuntime sizes the Go runtime to a fleet of n devices on client and says what it changed ("" for
// nothing). A small fleet keeps Go's defaults. A large one gets, unless the environment
// sets them itself:
//
//   - GOGC 25, or 10 with the lean client. The collector's target counts goroutine stacks,
//     and a million waiting devices hold 2 GB of them: at the default of 100 the heap may
//     grow by as much again between collections. Measured at 1M devices with paho: 5.2 KB
//     of RSS a device at 100, 4.2 KB at 25. At 25 a million devices need more than the
//     README's GOMEMLIMIT=3800MiB leaves (1.15 GB of live heap, 2.1 GB of stacks, and 25 %
//     of both above it): the limit, not GOGC, then paces the collector, with the heap held
//     at its goal and the sends paying for it in mark assists. The lean client makes about
//     a fifth of paho's garbage a message (the heap grew 5.9 MB/s at 16,700 messages/s),
//     so with it GOGC 10 still leaves some 20 s between collections and keeps a million
//     devices at 3,682 bytes of RSS each, under the limit; with paho's garbage GOGC 10
//     would collect back to back.
//   - GOMAXPROCS at least 4. With 2 or 3, the collector runs as "fractional" workers, and
//     the scheduler gives a P to such a worker ahead of the goroutines queued on it, for up
//     to ~10 ms; with 4 or more it runs a dedicated worker and leaves the other Ps alone.
//     Measured at 1M devices on 2 cores (GOGC 25): 1.7 % of sends left more than 10 ms late
//     with GOMAXPROCS 2, 0.7 % with 4.
//
// GOMEMLIMIT is the user's to set: it caps what the run may use, and the README's million
// device command sets it. So is GODEBUG=adaptivestackstart=0, which only the environment
// can set: Go starts new goroutines with the average stack it saw at the last collection,
// and a device that starts at 4 KiB stays there (too much of it is used for it to be shrunk
// back), so without it a million devices may take 2 GB more, depending on which goroutines
// the last collection before they started saw. tuneRuntime mentions it.
func tuneRuntime(n int, client string, getenv func(string) string) string {
	if n < largeFleet {
		return ""
	}
	var did []string
	if getenv("GOGC") == "" {
		gogc := largeFleetGOGC
		if client == scenario.ClientLean {
			gogc = largeFleetLeanGOGC
		}
		debug.SetGCPercent(gogc)
		did = append(did, fmt.Sprintf("GOGC %d", gogc))
	}
	if getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) < minLargeFleetPs {
		runtime.GOMAXPROCS(minLargeFleetPs)
		did = append(did, fmt.Sprintf("GOMAXPROCS %d", minLargeFleetPs))
	}
	var say []string
	if len(did) > 0 {
		say = append(say, fmt.Sprintf("%d devices: %s for a large fleet (set them in the environment to choose otherwise)", n, strings.Join(did, ", ")))
	}
	if !strings.Contains(getenv("GODEBUG"), "adaptivestackstart=") {
		say = append(say, "GODEBUG=adaptivestackstart=0 in the environment keeps every device's stack at 2 KiB, whatever ran before them")
	}
	return strings.Join(say, "; ")
}
