package runner

import (
	"time"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/metrics"
)

// backlog is where the open-model schedules of the devices that keep one (sim.Scheduled)
// stood at a moment: what they called for, what was sent, and what was not.
type backlog struct {
	due  uint64 // sends due before the moment
	sent uint64 // of those, sent (published or failed)
	// At the end of a run, the sends due more than LateAfter before the stop and never sent
	// (a device that was merely about to send is not behind) are split by why. behind: the
	// device was free to send and did not: the generator could not keep up. Otherwise its
	// publish was still in its connection's hands: waiting for its shaped link (heldBy, by
	// profile), or for the broker or the network (waiting).
	behind, waiting uint64
	heldBy          map[*linkHeld]uint64
}

// shed is what the schedules called for and was never sent.
func (b backlog) shed() uint64 { return b.due - b.sent }

// heldBack is the sends not sent because their devices waited for their shaped links.
func (b backlog) heldBack() uint64 {
	var n uint64
	for _, v := range b.heldBy {
		n += v
	}
	return n
}

// scheduleAt reads the schedules at t. The devices may still be running (progress, metrics),
// so a device's sends made, read after t, are counted up to its sends due at t. Only once
// they have all stopped (final) does it tell why sends were not made.
func scheduleAt(devices []*port, t time.Time, final bool) backlog {
	var b backlog
	for _, d := range devices {
		s, ok := d.dev.(sim.Scheduled)
		if !ok {
			continue
		}
		due := s.DueBefore(t)
		sent := min(d.sentScheduled(), due)
		b.due += due
		b.sent += sent
		if final {
			overdue := s.DueBefore(t.Add(-LateAfter))
			b.whyNotSent(d, overdue-min(sent, overdue), t)
		}
	}
	return b
}

// whyNotSent files n sends device d did not make by the stop at t. A device whose last
// publish returned within LateAfter of the stop, or after it, was waiting for that publish;
// one whose last publish returned earlier was free to send its next and did not. (A device
// sending back to back to catch up is in a publish at almost any moment too: when no
// publish failed and no connection dropped, Generator.limit gives those sends back to the
// generator.)
func (b *backlog) whyNotSent(d *port, n uint64, t time.Time) {
	if n == 0 {
		return
	}
	if processStart.Add(time.Duration(d.lastPublish)).Before(t.Add(-LateAfter)) {
		b.behind += n
		return
	}
	if lc, ok := d.conn.(*linkedConn); ok {
		if b.heldBy == nil {
			b.heldBy = map[*linkHeld]uint64{}
		}
		b.heldBy[lc.held] += n
		return
	}
	b.waiting += n
}

// sentScheduled is how many sends the device made on its schedule (PublishAt with a due
// time), published or failed.
func (p *port) sentScheduled() uint64 { return uint64(p.stats.scheduled.Load()) }

// registerSchedules reports, at every scrape, what the schedules of each kind's devices
// called for and what was sent (metrics.Schedules).
func registerSchedules(m *metrics.Metrics, devices []*port) {
	byKind := map[string][]*port{}
	var kinds []string
	for _, d := range devices {
		if _, ok := d.dev.(sim.Scheduled); !ok {
			continue
		}
		if byKind[d.km.kind] == nil {
			kinds = append(kinds, d.km.kind)
		}
		byKind[d.km.kind] = append(byKind[d.km.kind], d)
	}
	for _, k := range kinds {
		ports := byKind[k]
		m.Schedules.Add(k, func() (due, made uint64) {
			b := scheduleAt(ports, time.Now(), false)
			return b.due, b.sent
		})
	}
}
