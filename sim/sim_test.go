package sim

import (
	"testing"
	"time"
)

func TestClockCompressesADay(t *testing.T) {
	wall := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	c := Clock{WallStart: wall, Start: 6 * time.Hour, Day: 2 * time.Minute}
	for _, tc := range []struct {
		after time.Duration // wall time since the start
		want  string
	}{
		{0, "06:00"},
		{10 * time.Second, "08:00"},  // 10 s of a 2 min day = 2 h
		{100 * time.Second, "02:00"}, // past midnight
		{130 * time.Second, "08:00"}, // the next day
	} {
		if got := FormatTimeOfDay(c.TimeOfDay(wall.Add(tc.after))); got != tc.want {
			t.Errorf("after %v: %s, want %s", tc.after, got, tc.want)
		}
	}
	if got := c.WallFor(time.Hour); got != 5*time.Second {
		t.Errorf("WallFor(1h) = %v, want 5s", got)
	}
	if real := (Clock{WallStart: wall}); real.WallFor(time.Hour) != time.Hour || real.Scale() != 1 {
		t.Errorf("a zero Day must run at wall speed")
	}
}

func TestParseTimeOfDay(t *testing.T) {
	for in, want := range map[string]time.Duration{"00:00": 0, "6:30": 6*time.Hour + 30*time.Minute, "23:59": 23*time.Hour + 59*time.Minute} {
		if got, err := ParseTimeOfDay(in); err != nil || got != want {
			t.Errorf("ParseTimeOfDay(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "6am", "24:00", "12:60", "12:5", "123:00", "-1:00", "+1:00", "12:+5", "12-30"} {
		if _, err := ParseTimeOfDay(in); err == nil {
			t.Errorf("ParseTimeOfDay(%q) accepted", in)
		}
	}
}
