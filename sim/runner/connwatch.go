package runner

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// connWatch follows the connections going up and down, for the report: how many dropped
// and came back, the peak rate of connects the broker saw, and how long the fleet took to
// be whole again after losing connections (a reconnect storm's time to full reconnection).
type connWatch struct {
	mu             sync.Mutex
	total          int // connections the run opens
	up             int
	whole          bool      // every connection has been up at once
	brokenAt       time.Time // when the fleet stopped being whole; zero while whole
	episodes       int
	longest        time.Duration
	windows        map[int64]int // connects per 100 ms window (Unix time / 100 ms)
	Connects, Lost int64
}

func newConnWatch(total int) *connWatch {
	return &connWatch{total: total, windows: map[int64]int{}}
}

// change records that a connection went up or down (lost: it dropped rather than closed).
func (w *connWatch) change(up bool, lost bool, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if up {
		w.up++
		w.Connects++
		w.windows[now.UnixNano()/int64(100*time.Millisecond)]++
		if w.up == w.total {
			w.whole = true
			if !w.brokenAt.IsZero() {
				w.longest = max(w.longest, now.Sub(w.brokenAt))
				w.brokenAt = time.Time{}
			}
		}
		return
	}
	w.up--
	if lost {
		w.Lost++
		if w.whole && w.brokenAt.IsZero() {
			w.brokenAt = now
			w.episodes++
		}
	}
}

// ConnSummary is what the connections did.
type ConnSummary struct {
	Connections int   // opened by the run
	Connects    int64 // successful connects, first ones and reconnects
	Lost        int64 // established connections that dropped
	// PeakPerSecond is the most connects in any 100 ms window, as a rate.
	PeakPerSecond float64
	// Episodes counts the times the fleet, once whole, lost connections; Longest is the
	// longest time from such a loss until every connection was back (time to full
	// reconnection), and Unhealed says the run ended with connections still missing.
	Episodes  int
	Longest   time.Duration
	Unhealed  bool
	StillDown int // at the end
}

func (w *connWatch) summary(now time.Time) ConnSummary {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := ConnSummary{Connections: w.total, Connects: w.Connects, Lost: w.Lost, Episodes: w.episodes, Longest: w.longest, StillDown: w.total - w.up}
	for _, n := range w.windows {
		s.PeakPerSecond = max(s.PeakPerSecond, float64(n)*10)
	}
	if !w.brokenAt.IsZero() {
		s.Unhealed = true
		s.Longest = max(s.Longest, now.Sub(w.brokenAt))
	}
	return s
}

func (c ConnSummary) print(w io.Writer) {
	fmt.Fprintf(w, "connections: %d opened, %d connects in all (peak %.0f/s), %d dropped", c.Connections, c.Connects, c.PeakPerSecond, c.Lost)
	if c.Episodes > 0 {
		fmt.Fprintf(w, "; after losing connections the fleet was whole again within %v at worst (%d times)", c.Longest.Round(time.Millisecond), c.Episodes)
		if c.Unhealed {
			fmt.Fprint(w, ", the last time not before the end")
		}
	}
	if c.StillDown > 0 {
		fmt.Fprintf(w, "; %d down at the end", c.StillDown)
	}
	fmt.Fprintln(w)
}
