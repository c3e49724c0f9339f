package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/sim/scenario"
)

func TestTuneRuntime(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	gogc := debug.SetGCPercent(100)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs); debug.SetGCPercent(gogc) })
	noEnv := func(string) string { return "" }

	if did := tuneRuntime(largeFleet-1, scenario.ClientPaho, noEnv); did != "" {
		t.Errorf("a small fleet was tuned: %s", did)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("a small fleet's GOGC became %d", got)
	}

	runtime.GOMAXPROCS(2)
	did := tuneRuntime(1_000_000, scenario.ClientPaho, noEnv)
	if got := debug.SetGCPercent(100); got != largeFleetGOGC {
		t.Errorf("GOGC %d for a large fleet, want %d", got, largeFleetGOGC)
	}
	if got := runtime.GOMAXPROCS(0); got != minLargeFleetPs {
		t.Errorf("GOMAXPROCS %d for a large fleet on 2, want %d", got, minLargeFleetPs)
	}
	if !strings.Contains(did, "GOGC 25") || !strings.Contains(did, "GOMAXPROCS 4") || !strings.Contains(did, "GODEBUG=adaptivestackstart=0") {
		t.Errorf("it says %q", did)
	}

	// The lean client's garbage leaves room for a lower GOGC.
	if did := tuneRuntime(1_000_000, scenario.ClientLean, noEnv); !strings.Contains(did, "GOGC 10") {
		t.Errorf("with the lean client it says %q, want GOGC 10", did)
	}
	if got := debug.SetGCPercent(100); got != largeFleetLeanGOGC {
		t.Errorf("GOGC %d for a large fleet on the lean client, want %d", got, largeFleetLeanGOGC)
	}

	// What the environment sets is the user's choice.
	runtime.GOMAXPROCS(2)
	set := func(k string) string {
		return map[string]string{"GOGC": "100", "GOMAXPROCS": "2", "GODEBUG": "adaptivestackstart=0"}[k]
	}
	if did := tuneRuntime(1_000_000, scenario.ClientLean, set); did != "" {
		t.Errorf("tuned despite the environment: %s", did)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC became %d despite the environment", got)
	}
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Errorf("GOMAXPROCS became %d despite the environment", got)
	}
}

// TestTuneLeavesLargeFleetsWithoutView checks that the classroom view, on by default for
// the embedded broker, is off by default for a large fleet (its observer grew every
// waiting device's stack to 4 KiB) and still served when --ui asks for it.
func TestTuneLeavesLargeFleetsWithoutView(t *testing.T) {
	for _, c := range []struct {
		ui       string
		set      bool
		embedded bool
		n        int
		want     bool
	}{
		{defaultUI, false, true, largeFleet - 1, true},
		{defaultUI, false, true, largeFleet, false},
		{defaultUI, true, true, 1_000_000, true}, // asked for
		{"127.0.0.1:9999", true, false, 10, true},
		{defaultUI, false, false, 10, false},
		{"off", true, true, 10, false},
	} {
		f := &runFlags{ui: c.ui, uiSet: c.set}
		if got := uiWanted(f, c.embedded, c.n); got != c.want {
			t.Errorf("--ui %s (given: %v), embedded %v, %d devices: view %v, want %v", c.ui, c.set, c.embedded, c.n, got, c.want)
		}
		if large := largeUI(f, c.n); large != (c.embedded && !c.want && c.ui != "off") {
			t.Errorf("--ui %s (given: %v), %d devices: says it left the view off for a large fleet: %v", c.ui, c.set, c.n, large)
		}
	}
}
