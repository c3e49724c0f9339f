package runner

import (
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/fleetsim/fleetsim/sim/scenario"
)

// TestLimiterOnlyWhenItCouldHold checks that a device gets a rate limiter of its own only
// from the first publish its group's limit could hold back, and that it is then full, as
// one it had held all along would be.
func TestLimiterOnlyWhenItCouldHold(t *testing.T) {
	tmpl := rate.NewLimiter(10, 10) // full again 1.1 s after a publish
	p := &port{limit: tmpl}
	if p.limited(0) != nil {
		t.Fatal("a device's first publish made it a limiter")
	}
	if p.limited(nanotime()-int64(2*time.Second)) != nil || p.ownLimit {
		t.Fatal("a publish 2 s after the previous one made it a limiter: the bucket was full")
	}
	own := p.limited(nanotime() - int64(500*time.Millisecond))
	if own == nil || own == tmpl || !p.ownLimit {
		t.Fatalf("a publish 0.5 s after the previous one got %p (template %p): want a limiter of its own", own, tmpl)
	}
	if tok := own.Tokens(); tok < 9.99 {
		t.Errorf("the device's new limiter holds %.2f tokens, want a full bucket of 10", tok)
	}
	if !own.Allow() || p.limited(0) != own {
		t.Error("the device's limiter was not kept")
	}
	if tok := tmpl.Tokens(); tok < 9.99 {
		t.Errorf("the group's template was spent: %.2f tokens", tok)
	}
}

// TestMaxRateHoldsAFloodingDevice checks that max_rate still holds a device that publishes
// as fast as it can: at most the burst and the rate over the run get out.
func TestMaxRateHoldsAFloodingDevice(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := testScenario(scenario.PerHome, 0, 1, 1, pingParams{Flood: 60})
	s.Groups[0].MaxRate = 10
	begin := time.Now()
	sum, _, _ := runOn(t, s)
	took := time.Since(begin).Seconds()
	// A burst of 10, then 10 a second; the retained ping is one of them.
	if out, most := sum.Kinds[0].Out, int64(10+10*took+1); out > most || out < 10 {
		t.Errorf("%d publishes in %.1f s at max_rate 10: want 10..%d", out, took, most)
	}
}

// TestPortFitsItsSizeClass keeps a device's port in the 256-byte size class: a million of
// them, and the next class is 288.
func TestPortFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(port{}); n > 256 {
		t.Errorf("a port is %d bytes, over the 256-byte size class", n)
	}
}
