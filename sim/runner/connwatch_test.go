package runner

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestConnWatchMeasuresAStorm(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := newConnWatch(4)
	for i := range 4 { // the ramp up: four connects in the first 100 ms
		w.change(true, false, at(10*i))
	}
	for i := range 3 { // three drop at once
		w.change(false, true, at(1000+i))
	}
	w.change(true, false, at(1200)) // and come back, the last 750 ms after the drop
	w.change(true, false, at(1300))
	w.change(true, false, at(1750))
	w.change(false, false, at(2000)) // closed on purpose: not a drop
	s := w.summary(at(2000))
	if s.Connects != 7 || s.Lost != 3 || s.Episodes != 1 || s.Longest != 750*time.Millisecond || s.PeakPerSecond != 40 || s.Unhealed || s.StillDown != 1 {
		t.Errorf("summary %+v", s)
	}
	var out bytes.Buffer
	s.print(&out)
	if got := out.String(); !strings.Contains(got, "4 opened, 7 connects in all (peak 40/s), 3 dropped") || !strings.Contains(got, "whole again within 750ms at worst (1 times)") {
		t.Errorf("printed %q", got)
	}
	w.change(false, true, at(2100)) // a drop the run does not see the end of
	if s := w.summary(at(2600)); !s.Unhealed || s.Episodes != 2 || s.Longest != 750*time.Millisecond || s.StillDown != 2 {
		t.Errorf("after an unhealed drop: %+v", s)
	}
}
