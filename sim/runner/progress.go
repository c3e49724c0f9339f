package runner

import (
	"context"
	"fmt"
	rtmetrics "runtime/metrics"
	"time"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// reportProgress writes a status line every cfg.ProgressEvery until ctx ends: how long the
// run has gone, connections up, message rates since the previous line, the latency p99 so
// far and what is lost. On a terminal (cfg.ProgressInPlace) the line is rewritten in place.
func reportProgress(ctx context.Context, cfg Config, started time.Time, devices []*port, conns []mqttConn, meas *measurement) {
	t := time.NewTicker(cfg.ProgressEvery) // set by Config.withDefaults
	defer t.Stop()
	var prev progress
	prevAt := started
	for {
		select {
		case <-ctx.Done():
			if cfg.ProgressInPlace && prevAt != started {
				fmt.Fprintln(cfg.Progress) // leave the last line standing
			}
			return
		case now := <-t.C:
			p := measureProgress(devices, conns)
			lat, tot := meas.sofar()
			secs := now.Sub(prevAt).Seconds()
			heap, goroutines := processNow()
			line := fmt.Sprintf("fleetsim: %v: %d devices, %d/%d connections up, %.0f msg/s out, %.0f msg/s in, p99 %s, %d lost, %d dropped, %d failed; %d goroutines, %.0f MB heap",
				now.Sub(started).Round(time.Second), len(devices), p.up, len(conns),
				float64(p.out-prev.out)/secs, float64(p.in-prev.in)/secs, dur(lat.P99, lat.Count), tot.Lost, p.dropped, p.failed,
				goroutines, float64(heap)/1e6)
			if b := scheduleAt(devices, now, false); b.due > 0 {
				// Sends due and not made yet: a generator that falls behind shows at once.
				line += fmt.Sprintf("; sent %s of %s due (%s not yet)", thousands(b.sent), thousands(b.due), thousands(b.shed()))
			}
			if cfg.ProgressInPlace {
				fmt.Fprint(cfg.Progress, "\r\033[K"+line) // carriage return, erase the line
			} else {
				fmt.Fprintln(cfg.Progress, line)
			}
			prev, prevAt = p, now
		}
	}
}

// processNow reads the process's heap in use and goroutine count without stopping the
// world (runtime/metrics), so a long soak can watch them for growth.
func processNow() (heap uint64, goroutines uint64) {
	samples := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/sched/goroutines:goroutines"}}
	rtmetrics.Read(samples)
	for i, s := range samples {
		if s.Value.Kind() != rtmetrics.KindUint64 {
			continue
		}
		if i == 0 {
			heap = s.Value.Uint64()
		} else {
			goroutines = s.Value.Uint64()
		}
	}
	return heap, goroutines
}

// progress is a snapshot of the fleet's counters.
type progress struct{ out, in, dropped, failed, up int64 }

func measureProgress(devices []*port, conns []mqttConn) progress {
	var p progress
	for _, d := range devices {
		st := &d.stats
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

// sofar is the latency of every measured delivery so far and the accounting totals (Lost
// is final loss; what may still arrive is Missing).
func (m *measurement) sofar() (measure.Percentiles, measure.Totals) {
	kinds := m.kindList()
	var recs []*measure.Recorder
	var tot measure.Totals
	for _, k := range kinds {
		for q := range 3 {
			recs = append(recs, k.latency[q])
			tot.Add(k.tracker[q].Snapshot())
		}
	}
	return measure.Combined(recs...), tot
}
