package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetsim/fleetsim/sim/mqttconn"
)

// reportProgress writes a status line every cfg.ProgressEvery until ctx ends: how long the
// run has gone, connections up, and message rates since the previous line.
func reportProgress(ctx context.Context, cfg Config, started time.Time, devices []*device, conns []*mqttconn.Conn) {
	every := cfg.ProgressEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var prev progress
	prevAt := started
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p := measureProgress(devices, conns)
			secs := now.Sub(prevAt).Seconds()
			fmt.Fprintf(cfg.Progress, "fleetsim: %v: %d devices, %d/%d connections up, %.0f msg/s out, %.0f msg/s in, %d dropped, %d failed\n",
				now.Sub(started).Round(time.Second), len(devices), p.up, len(conns),
				float64(p.out-prev.out)/secs, float64(p.in-prev.in)/secs, p.dropped, p.failed)
			prev, prevAt = p, now
		}
	}
}

// progress is a snapshot of the fleet's counters.
type progress struct{ out, in, dropped, failed, up int64 }

func measureProgress(devices []*device, conns []*mqttconn.Conn) progress {
	var p progress
	for _, d := range devices {
		st := &d.port.stats
		p.out += st.out.Load()
		p.in += st.in.Load()
		p.dropped += st.dropped.Load()
		p.failed += st.failed.Load()
	}
	for _, c := range conns {
		if c.Up() {
			p.up++
		}
	}
	return p
}
