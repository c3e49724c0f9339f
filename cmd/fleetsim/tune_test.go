package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestTuneRuntime(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	gogc := debug.SetGCPercent(100)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs); debug.SetGCPercent(gogc) })
	noEnv := func(string) string { return "" }

	if did := tuneRuntime(largeFleet-1, noEnv); did != "" {
		t.Errorf("a small fleet was tuned: %s", did)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("a small fleet's GOGC became %d", got)
	}

	runtime.GOMAXPROCS(2)
	did := tuneRuntime(1_000_000, noEnv)
	if got := debug.SetGCPercent(100); got != largeFleetGOGC {
		t.Errorf("GOGC %d for a large fleet, want %d", got, largeFleetGOGC)
	}
	if got := runtime.GOMAXPROCS(0); got != minLargeFleetPs {
		t.Errorf("GOMAXPROCS %d for a large fleet on 2, want %d", got, minLargeFleetPs)
	}
	if !strings.Contains(did, "GOGC 25") || !strings.Contains(did, "GOMAXPROCS 4") || !strings.Contains(did, "GODEBUG=adaptivestackstart=0") {
		t.Errorf("it says %q", did)
	}

	// What the environment sets is the user's choice.
	runtime.GOMAXPROCS(2)
	set := func(k string) string {
		return map[string]string{"GOGC": "100", "GOMAXPROCS": "2", "GODEBUG": "adaptivestackstart=0"}[k]
	}
	if did := tuneRuntime(1_000_000, set); did != "" {
		t.Errorf("tuned despite the environment: %s", did)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC became %d despite the environment", got)
	}
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Errorf("GOMAXPROCS became %d despite the environment", got)
	}
}
